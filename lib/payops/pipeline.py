"""The runner's step pipeline: kernels started ahead with their imports done, HTML rendered behind.

Invariant: each step is still its own notebook executed by papermill in its own fresh kernel — same
parameters cell, same cells, same papermill error banner, same failure semantics (the first failing
step stops the run; its executed notebook is kept). What changes is *when* the kernel is paid for:

1. :class:`StepKernels` launches the kernel of step *k+1* (and up to ``lookahead`` steps ahead) while
   step *k* runs, each with ``--IPKernelApp.exec_lines`` running :func:`warm_up` at kernel start.
2. :func:`warm_up` (in the kernel) runs the notebook's own import statements in a throwaway namespace
   and checks the database schema once (``require_schema``: engine, connection, Alembic revision), so
   the notebook's import cell and its first ``session_scope`` find everything cached. It binds nothing
   in the notebook's namespace and records nothing: a problem it meets (a missing module, an
   unreachable database) is met again — and raised, in the notebook — by the step's own cell.
3. Papermill executes the notebook against the started kernel (:class:`PrestartedKernelEngine`, the
   stock nbclient engine given ``km``); waiting for the kernel to answer ``kernel_info`` waits for the
   warm-up too, so a kernel is never used half-started. A kernel that died before its step is replaced
   by a fresh one, started then.
4. A kernel whose step is over is stopped at once (:meth:`StepKernels.retire`, nbclient's "immediate"
   shutdown); :meth:`StepKernels.close` stops the ones no step used (after a failure, or Ctrl-C).
   Kernels are started with ``JPY_PARENT_PID``: a runner killed with SIGKILL takes its kernels with it
   (ipykernel's parent poller), leaving nothing running but the resumable run state.
5. :class:`HtmlRenderer` renders each executed notebook to HTML (``archive.render_html``) on one
   background thread while the next step runs; :meth:`HtmlRenderer.finish` waits for them — and renders
   any finished step's notebook still without HTML (a process killed before its rendering) — and
   raises the first rendering error. The runner calls it before sealing: the seal covers every HTML.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from payops import kernelfork

KERNEL_NAME = "python3"
# no loopback-TCP banner or shutdown chatter in ops' terminal; no IPython history file shared by kernels
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL", "--HistoryManager.hist_file=:memory:"]
ENGINE_NAME = "payops-prestarted"
# kernels started ahead of the running step: 2 keeps both cores busy on a 2-core host (bench_runbook measures)
LOOKAHEAD = 2
# imported by warm_up in every kernel (paid once in the kernel template)
WARM_UP_IMPORTS = ("import payops.pipeline", "import payops.config", "import payops.db",
                   "import sqlalchemy.dialects.sqlite.pysqlite", "import sqlalchemy.dialects.postgresql.psycopg")


# --- in the kernel -------------------------------------------------------------------------------
def warm_up(imports: str) -> None:
    """Run ``imports`` (a notebook's import statements) in a namespace of their own, then open the
    database and check its schema — the work every step's first cell would otherwise start with."""
    exec(compile(imports, "<payops step imports>", "exec"), {})  # noqa: S102 — the notebook's own import lines
    from payops.config import get_settings
    from payops.db import require_schema

    require_schema(get_settings().database_url)


def notebook_imports(notebook: Path) -> str:
    """The import statements of a notebook's code cells (not its parameters), one per line, in order."""
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    lines: list[str] = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code" or "parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        src = "".join(cell.get("source", []))
        try:
            tree = ast.parse(src)
        except SyntaxError:  # IPython magics: the notebook itself will say what is wrong
            continue
        lines += [ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    return "\n".join(dict.fromkeys(lines))


def warm_up_line(notebook: Path) -> str:
    """The ``exec_lines`` entry that warms a kernel for ``notebook`` (binds no name in its namespace)."""
    code = f"from payops.pipeline import warm_up\nwarm_up({notebook_imports(notebook)!r})"
    return f"exec({code!r}, {{}})"


# --- in the runner -------------------------------------------------------------------------------
def preload_lines(notebooks: Iterable[Path]) -> list[str]:
    """What the kernel template imports for these step notebooks: the warm-up's own modules, then every
    notebook's import lines (see :mod:`payops.kernelfork`)."""
    lines = list(WARM_UP_IMPORTS)
    for path in notebooks:
        lines += notebook_imports(path).splitlines()
    return list(dict.fromkeys(lines))


def prepare_kernels(notebooks: Iterable[Path]) -> None:
    """Start the kernel template with these notebooks' imports now, without waiting for it (a run about to
    execute them: the template's imports overlap the runner's own work)."""
    kernelfork.prepare(preload_lines(notebooks))


def _register_engine() -> None:
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import remove_args

    class PrestartedKernelEngine(NBClientEngine):
        """Papermill's nbclient engine, executing against a kernel started (and warmed) ahead.

        The kernel's shutdown is the caller's (:meth:`StepKernels.retire`); this closes the client's
        channels, which nbclient leaves open for a kernel it does not own."""

        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, log_output: bool = False,
                                     stdout_file: Any = None, stderr_file: Any = None, start_timeout: int = 60,
                                     execution_timeout: float | None = None, **kwargs: Any) -> Any:
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            client = PapermillNotebookClient(
                nb_man, timeout=execution_timeout, startup_timeout=start_timeout, kernel_name=kernel_name,
                log=logger, log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file, **kwargs)
            try:
                return client.execute()
            finally:
                if client.kc is not None:
                    client.kc.stop_channels()

    papermill_engines.register(ENGINE_NAME, PrestartedKernelEngine)


_engine_lock = threading.Lock()
_engine_registered = False


def ensure_engine() -> str:
    """Register :class:`PrestartedKernelEngine` with papermill (once per process); its name."""
    global _engine_registered
    with _engine_lock:
        if not _engine_registered:
            _register_engine()
            _engine_registered = True
    return ENGINE_NAME


IPC_PREFIX = "payops-k-"


def remove_stale_socket_folders(folder: Path | None = None) -> list[Path]:
    """Remove the kernel socket folders (``payops-k-PID-…`` in the temp folder) of runners that are gone —
    killed before :meth:`StepKernels.close` could remove their own. Only this user's; the ones removed."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{IPC_PREFIX}*-*"):
        pid = path.name[len(IPC_PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or path.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
            continue  # its runner is alive
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        except OSError:  # gone meanwhile, or a pid we may not signal (alive)
            continue
    return removed


class StepKernels:
    """The kernels of one execution's steps (in order), each started ``lookahead`` steps ahead.

    Every kernel call happens on the caller's thread (``jupyter_core``'s ``run_sync``, as nbclient does).
    """

    def __init__(self, notebooks: Sequence[tuple[str, Path]], *, lookahead: int | None = None,
                 extra_arguments: Iterable[str] = KERNEL_ARGUMENTS) -> None:
        self._order = [step for step, _ in notebooks]
        self._notebooks = dict(notebooks)
        self._lookahead = max(0, LOOKAHEAD if lookahead is None else lookahead)
        self._extra = list(extra_arguments)
        self._started: dict[str, Any] = {}
        self._failed: dict[str, Exception] = {}
        self._preload_lines: list[str] | None = None
        self._ipc_dir: Path | None = None
        self._count = 0

    def __enter__(self) -> StepKernels:
        if self._order:
            self._start_through(0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self, step: str) -> Any:
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        if self._ipc_dir is None:
            remove_stale_socket_folders()
            # 0700: this user's kernels only; named by this pid, so a later runner removes it if this one is killed
            self._ipc_dir = Path(tempfile.mkdtemp(prefix=f"{IPC_PREFIX}{os.getpid()}-"))
        self._count += 1
        # Unix sockets in a private folder, not loopback TCP: no port picked here can be taken by another
        # process before the kernel binds it (a kernel that then dies leaves its step waiting a minute),
        # and no other local user can connect to the kernel
        km = AsyncKernelManager(kernel_name=KERNEL_NAME, transport="ipc", ip=str(self._ipc_dir / f"k{self._count}"))
        kernelfork.attach(km, self._preload())  # the template imports them once; the fork waits for it
        run_sync(km.start_kernel)(extra_arguments=[
            *self._extra, f"--IPKernelApp.exec_lines={warm_up_line(self._notebooks[step])}"])
        return km

    def _preload(self) -> list[str]:
        if self._preload_lines is None:
            self._preload_lines = preload_lines(self._notebooks.values())
        return self._preload_lines

    def _start_through(self, index: int) -> None:
        for step in self._order[index:index + self._lookahead + 1]:
            if step not in self._started and step not in self._failed:
                try:
                    self._started[step] = self._start(step)
                except Exception as exc:  # noqa: BLE001 — raised by take(step), inside that step's own handling
                    self._failed[step] = exc

    def take(self, step: str) -> Any:
        """The started kernel manager for ``step`` (a fresh one if it died); starts the next ones. A kernel
        that could not be started raises here, when its step runs — where the runner records failures."""
        from jupyter_core.utils import run_sync

        self._start_through(self._order.index(step))
        if step in self._failed:
            raise self._failed.pop(step)
        km = self._started.pop(step)
        if not run_sync(km.is_alive)():
            self.retire(km)
            km = self._start(step)
        return km

    def retire(self, km: Any) -> None:
        """Stop a kernel whose step is over: killed at once, as nbclient's ``shutdown_kernel="immediate"``
        does — its notebook is complete and written, every database write was committed in its cells,
        and a graceful exit would spend a second of CPU tearing down modules that other kernels need."""
        from jupyter_core.utils import run_sync

        run_sync(km.shutdown_kernel)(now=True)

    def close(self) -> None:
        """Stop the kernels no step used (the run failed or stopped early); remove their sockets' folder."""
        while self._started:
            self.retire(self._started.popitem()[1])
        if self._ipc_dir is not None:
            shutil.rmtree(self._ipc_dir, ignore_errors=True)
            self._ipc_dir = None


class HtmlRenderer:
    """Renders notebooks to HTML on one background thread (see the module docstring, 5)."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="payops-html")
        self._pending: list[Any] = []

    def submit(self, ipynb: Path) -> None:
        """Render ``ipynb`` (if it exists) to ``<same name>.html`` in the background."""
        if Path(ipynb).exists():
            from payops import archive

            self._pending.append(self._pool.submit(archive.render_html, Path(ipynb)))

    def finish(self, notebooks: Iterable[Path] = ()) -> None:
        """Wait for every rendering, then render each of ``notebooks`` that exists without its HTML;
        the first failure is raised (an ``ArchiveError``)."""
        from payops import archive

        pending, self._pending = self._pending, []
        for future in pending:
            future.result()
        for ipynb in notebooks:
            if Path(ipynb).exists() and not Path(ipynb).with_suffix(".html").exists():
                archive.render_html(Path(ipynb))

    def close(self) -> None:
        """Stop the background thread once what it was given is rendered (raises nothing)."""
        self._pool.shutdown(wait=True)
