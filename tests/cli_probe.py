"""What a ``payops`` command imports: run it in a fresh interpreter and list ``sys.modules`` after it (the
CLI's lazy-import tests: the quick commands and ``--help`` must not pull the heavy libraries in)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def modules_after(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, set[str]]:
    """Run ``payops ARGS`` in a fresh interpreter; its exit code, output and every module it imported."""
    probe = (
        "import json, sys\n"
        "from payops.cli import main\n"
        f"sys.argv = ['payops', *{args!r}]\n"
        "code = 0\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code or 0\n"
        "print('\\n@@MODULES@@' + json.dumps(sorted(sys.modules)))\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "120", **(env or {})}, check=False)
    out, _, mods = proc.stdout.rpartition("\n@@MODULES@@")
    assert mods, proc.stdout + proc.stderr
    return proc.returncode, out + proc.stderr, set(json.loads(mods))


def imported(modules: set[str], name: str) -> bool:
    """``name`` or one of its submodules is among ``modules``."""
    return name in modules or any(m.startswith(name + ".") for m in modules)
