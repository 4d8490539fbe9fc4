"""``payops lab``: JupyterLab from the project's own environment, on loopback, with a token.

- root: the project folder, opened on ``runbooks/`` (``notebooks/`` beside it) — the notebooks the runner
  executes, so what a person runs by hand and what the runner archives are the same files;
- bound to 127.0.0.1 only, a random token (printed once, never written to a notebook), no browser opened
  unless asked, no file of the user's home touched beyond JupyterLab's own settings;
- the kernels' environment is this process's environment plus the settings resolved to absolute values
  (a kernel's working folder is its notebook's: a relative ``outputs`` or SQLite path would land
  elsewhere) and ``PAYOPS_LAB=1`` (see :func:`payops.lab.interactive`). Secrets stay in the environment.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from payops.config import Settings, get_settings
from payops.errors import FieldProblem, ParamsInvalid
from payops.lab import ENV_FLAG

ROOT = Path(__file__).resolve().parents[3]
HOST = "127.0.0.1"


@dataclass(frozen=True)
class LabServer:
    """How ``payops lab`` starts JupyterLab: the command, its environment, the address with the token."""

    argv: list[str]
    env: dict[str, str]
    port: int
    token: str

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/lab/tree/runbooks?token={self.token}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def kernel_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the settings the kernels must agree on, absolute."""
    env = dict(os.environ if base is None else base)
    env["PAYOPS_DATABASE_URL"] = settings.database_url
    env["PAYOPS_OUTPUT_DIR"] = str(Path(settings.output_dir).resolve())
    env["PAYOPS_STRIPE_API_BASE"] = settings.stripe_api_base
    env[ENV_FLAG] = "1"
    return env


def build(port: int | None = None, *, settings: Settings | None = None, token: str | None = None,
          open_browser: bool = False, root: Path = ROOT) -> LabServer:
    """The JupyterLab command for ``port`` (0 or None: a free one)."""
    if port is not None and not 0 <= port <= 65535:
        raise ParamsInvalid(FieldProblem("--port", f"{port} is not a TCP port (1-65535, or 0 for a free one)"))
    settings = settings or get_settings()
    port = port or free_port()
    token = token or secrets.token_urlsafe(24)
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.ip={HOST}", f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}", "--ServerApp.default_url=/lab/tree/runbooks",
            f"--IdentityProvider.token={token}", "--ServerApp.allow_remote_access=False",
            f"--ServerApp.open_browser={open_browser}",
            # offline by design: no news feed, no update check, no extension manager querying a registry
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # ops hosts and CI containers run as root
        argv.append("--ServerApp.allow_root=True")
    return LabServer(argv, kernel_env(settings), port, token)


def serve(server: LabServer) -> int:
    """Run JupyterLab in the foreground until Ctrl-C; its exit code."""
    proc = subprocess.Popen(server.argv, env=server.env, cwd=ROOT)
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())  # stopping payops stops JupyterLab
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
