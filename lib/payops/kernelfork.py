"""Runbook kernels forked from a warm template process instead of started from scratch.

A runbook step runs in its own fresh kernel; most of what such a kernel costs is importing — ipykernel,
IPython, then the step's libraries (pandas, matplotlib, SQLAlchemy, stripe, payops): 1–1.5 s of CPU per
step, paid again by every step of every run. Here one *template* process (``python -m payops.kernelfork``,
started by the runner on first use) imports all that once; each kernel is then ``fork()``-ed from it and
becomes an ordinary ipykernel (``IPKernelApp``, the same command line papermill would have used) in its
own session, with the runner's environment and working directory of that moment. A kernel is still a new
process per step with nothing of the previous step in it: the template never runs a cell, never reads the
settings, never opens a file, socket or database connection — it only imports modules — and it refuses to
fork while it has a second thread.

Plugged in as a Jupyter kernel provisioner (:class:`ForkProvisioner`, a ``LocalProvisioner`` whose launch
asks the template), so jupyter_client, nbclient and papermill drive the kernel exactly as any other: its
connection file, signals (interrupt, kill) to its process group, polling through a pidfd.

Sharing: the template listens on a unix socket in a private (0700) folder. Every kernel it forks gets the
socket's path in ``PAYOPS_KERNEL_TEMPLATE``, so a runner inside a kernel (the rehearsal runs the SOP from its
notebooks) joins the same template instead of starting another; any process with the variable set does the
same (the test suite sets it for the CLI processes it starts).

Lifetime: every kernel watches the pid of the runner that asked for it (a pidfd, on a thread of its own)
and exits when that runner ends — SIGKILL included — as kernels of a killed runner always did. The template
ends when the process that started it ends (end-of-file on a lifeline pipe) and removes its socket; its
kernels then also see their parent gone (ipykernel's parent poller, ``parent_handle`` = the template).

``PAYOPS_KERNEL_FORK=0`` turns it off (every kernel started with ``python -m ipykernel_launcher``); it is off
by itself where ``fork``/``pidfd_open`` are missing (not Linux) and whenever the template cannot start or
dies — then kernels start the usual way and nothing else changes.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from typing import Any

ENV_SWITCH = "PAYOPS_KERNEL_FORK"
# a template another process started, to join instead of starting one (given to every forked kernel, so a
# runner inside a kernel — the rehearsal's — forks its kernels from the same template)
ENV_TEMPLATE = "PAYOPS_KERNEL_TEMPLATE"
# what every kernel imports before its first cell: paid once in the template
KERNEL_IMPORTS = (
    "import ipykernel.kernelapp",
    "import ipykernel.ipkernel",
    "import ipykernel.zmqshell",
    "import IPython.core.completer",
    "import matplotlib_inline.backend_inline",
)
READY_TIMEOUT = 120.0


def enabled() -> bool:
    """Whether kernels are forked from the template (``PAYOPS_KERNEL_FORK``, default on where supported)."""
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return hasattr(os, "fork") and hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")


class TemplateUnavailable(RuntimeError):
    """The template process could not fork a kernel (not started, died, or refused)."""


# --- the template process ---------------------------------------------------------------------------
def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def _preload(code: str) -> str | None:
    """Import ``code`` (import statements) here; the error text if one failed — the kernel that needs the
    module imports it again, and the notebook's own cell raises it where the runner records failures."""
    try:
        exec(compile(code, "<payops kernel template>", "exec"), {})  # noqa: S102 — notebooks' own import lines
    except Exception as exc:  # noqa: BLE001 — reported to the runner; met again in the kernel itself
        return f"{type(exc).__name__}: {exc}"
    return None


def _watch_runner(pid: int) -> None:
    """In a kernel: end it when the runner that asked for it ends (SIGKILL included) — the kernel's parent
    is the template, which may serve other runners and outlive this one."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)

    def wait() -> None:
        select.select([fd], [], [])
        os._exit(1)

    threading.Thread(target=wait, name="payops-runner-watch", daemon=True).start()


def _become_kernel(request: dict[str, Any], fds: Iterable[int]) -> None:
    """In the forked child: turn into ``python -m ipykernel_launcher ARGS`` with the request's environment
    and working directory. Never returns."""
    code = 1
    try:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        os.setsid()  # its own process group: jupyter_client signals the group, as for a launched kernel
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        if request.get("runner_pid"):
            _watch_runner(int(request["runner_pid"]))
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.path[0] = request["cwd"]  # `python -m` puts the working directory first
        args = list(request["args"])
        sys.argv = ["ipykernel_launcher", *args]
        from ipykernel.kernelapp import IPKernelApp

        # parent_handle's default was read from JPY_PARENT_PID when the template imported ipykernel: the
        # kernel's parent is the template, whose end ends the kernel too
        IPKernelApp.launch_instance(argv=[*args, f"--IPKernelApp.parent_handle={os.getppid()}"])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 — printed to the kernel's stderr (the runner's), then the exit code
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _handle(request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
    if "preload" in request:
        error = _preload(request["preload"])
        return {"ok": True, "errors": [error] if error else []}
    if threading.active_count() > 1:  # forking a threaded process can deadlock the child
        return {"error": f"template has {threading.active_count()} threads; not forking"}
    try:
        pid = os.fork()
    except OSError as exc:
        return {"error": f"fork failed: {exc}"}
    if pid == 0:
        _become_kernel(request, fds)
    return {"pid": pid}


def serve(listen_fd: int, lifeline_fd: int) -> None:
    """The template's loop over its unix socket (``listen_fd``, bound by the runner that started it).

    Each connection is greeted with the template's pid, then sends JSON lines: ``{"preload": CODE}``
    imports more; ``{"args": [...], "env": {...}, "cwd": PATH, "runner_pid": N}`` forks a kernel and
    answers its pid. End of file on ``lifeline_fd`` (the process that started it is gone) ends the
    template and removes its socket's folder."""
    import selectors
    import socket

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle; it closes the lifeline
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # kernels reaped by the system: no zombies
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")  # what ipykernel sets
    listener = socket.socket(fileno=listen_fd)
    errors = [e for e in (_preload(line) for line in KERNEL_IMPORTS) if e]
    sel = selectors.DefaultSelector()
    sel.register(lifeline_fd, selectors.EVENT_READ, None)
    sel.register(listener, selectors.EVENT_READ, None)
    buffers: dict[socket.socket, bytearray] = {}
    try:
        while True:
            for key, _ in sel.select():
                if key.fileobj == lifeline_fd:
                    if not os.read(lifeline_fd, 4096):
                        return
                elif key.fileobj is listener:
                    conn, _ = listener.accept()
                    buffers[conn] = bytearray()
                    sel.register(conn, selectors.EVENT_READ, None)
                    with contextlib.suppress(OSError):  # a client gone at once: its recv says so
                        conn.sendall(_line({"template": os.getpid(), "executable": sys.executable,
                                            "errors": errors}))
                else:
                    conn = key.fileobj  # type: ignore[assignment]
                    try:
                        chunk = conn.recv(1 << 20)
                    except OSError:  # reset by a client killed mid-request: as if it closed
                        chunk = b""
                    if not chunk:
                        sel.unregister(conn)
                        conn.close()
                        del buffers[conn]
                        continue
                    buf = buffers[conn]
                    buf += chunk
                    while b"\n" in buf:
                        line, _, rest = bytes(buf).partition(b"\n")
                        buf[:] = rest
                        fds = [sel.fileno(), lifeline_fd, listener.fileno(), *(c.fileno() for c in buffers)]
                        try:
                            answer = _handle(json.loads(line), fds)
                        except (ValueError, KeyError, TypeError) as exc:  # a malformed request: said, not fatal
                            answer = {"error": f"bad request: {type(exc).__name__}: {exc}"}
                        with contextlib.suppress(OSError):  # a client gone meanwhile
                            conn.sendall(_line(answer))
    finally:
        path = listener.getsockname()
        if isinstance(path, str) and path:
            with contextlib.suppress(OSError):
                os.unlink(path)
                os.rmdir(os.path.dirname(path))


# --- the runner's side ------------------------------------------------------------------------------
class Template:
    """A connection to a template process (one request at a time per connection). :meth:`start` starts one
    owned by this process; :meth:`connect` joins one another process started (``PAYOPS_KERNEL_TEMPLATE``)."""

    def __init__(self, path: str, *, proc: subprocess.Popen[bytes] | None = None, lifeline: int | None = None,
                 folder: str | None = None) -> None:
        import socket

        self.path = path
        self._proc = proc
        self._lifeline = lifeline
        self._folder = folder
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(path)
        except OSError:
            self._sock.close()
            raise
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._pid: int | None = proc.pid if proc is not None else None
        self.executable = sys.executable if proc is not None else ""  # a joined one's comes with its greeting
        self._ready = False
        self._owed = 1  # the template's greeting
        self._preloaded: set[str] = set()
        self.closed = False

    @classmethod
    def start(cls) -> Template:
        """A new template process, owned by this one: it ends when this process ends."""
        import socket
        import tempfile

        folder = tempfile.mkdtemp(prefix="payops-kt-")  # 0700: only this user may ask it for kernels
        path = os.path.join(folder, "template.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lifeline_r, lifeline_w = os.pipe()
        try:
            listener.bind(path)
            listener.listen(64)
            proc = subprocess.Popen(
                [sys.executable, "-m", "payops.kernelfork", str(listener.fileno()), str(lifeline_r)],
                stdin=subprocess.DEVNULL, pass_fds=(listener.fileno(), lifeline_r), close_fds=True)
        except BaseException:
            os.close(lifeline_w)
            with contextlib.suppress(OSError):
                os.unlink(path)
                os.rmdir(folder)
            raise
        finally:
            listener.close()
            os.close(lifeline_r)
        return cls(path, proc=proc, lifeline=lifeline_w, folder=folder)

    @classmethod
    def connect(cls, path: str) -> Template:
        """Join the template listening at ``path`` (started by another process)."""
        return cls(path)

    @property
    def pid(self) -> int:
        """The template process's pid (the greeting's, for a joined one)."""
        if self._pid is None:
            self._ask(None)
        assert self._pid is not None
        return self._pid

    def _answer(self, timeout: float) -> dict[str, Any]:
        while b"\n" not in self._buf:
            ready, _, _ = select.select([self._sock], [], [], timeout)
            if not ready:
                raise TemplateUnavailable(f"kernel template at {self.path} did not answer within {timeout:.0f} s")
            chunk = self._sock.recv(1 << 20)
            if not chunk:
                raise TemplateUnavailable(f"kernel template at {self.path} closed the connection")
            self._buf += chunk
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf[:] = rest
        answer: dict[str, Any] = json.loads(line)
        if "template" in answer:
            self._pid = int(answer["template"])
            self.executable = str(answer.get("executable", ""))
        return answer

    def _ask(self, request: dict[str, Any] | None, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        """Send ``request`` (None: nothing new) and read every answer still owed; the last one. Requests
        queue in the socket: the template works through them in order while the runner goes on."""
        if self.closed:
            raise TemplateUnavailable("kernel template closed")
        if request is not None:
            self._send(request)
        try:
            answer: dict[str, Any] = {}
            while self._owed:
                # the greeting comes after the template's own imports: a longer wait
                answer = self._answer(READY_TIMEOUT if not self._ready or self._owed > 1 else timeout)
                self._ready = True
                self._owed -= 1
            return answer
        except (OSError, ValueError, TemplateUnavailable) as exc:
            self.close()
            raise TemplateUnavailable(str(exc)) from exc

    def _send(self, request: dict[str, Any]) -> None:
        if self.closed:
            raise TemplateUnavailable("kernel template closed")
        try:
            self._sock.sendall(_line(request))
        except OSError as exc:
            self.close()
            raise TemplateUnavailable(str(exc)) from exc
        self._owed += 1

    def preload(self, lines: Iterable[str], *, wait: bool = True) -> None:
        """Have the template import these statements (once each) before it forks the next kernel;
        ``wait=False`` queues them and returns at once (the next fork waits for them)."""
        with self._lock:
            new = [line for line in dict.fromkeys(lines) if line and line not in self._preloaded]
            if new:
                self._preloaded.update(new)
                if wait:
                    self._ask({"preload": "\n".join(new)})
                else:
                    self._send({"preload": "\n".join(new)})

    def fork(self, args: list[str], env: dict[str, str], cwd: str) -> int:
        """A new kernel process running ``ipykernel_launcher ARGS``; its pid. It ends with this process
        (it watches this pid) and with the template (its parent)."""
        with self._lock:
            answer = self._ask({"args": args, "env": env, "cwd": cwd, "runner_pid": os.getpid()}, timeout=30.0)
        if "pid" not in answer:
            raise TemplateUnavailable(answer.get("error", f"unexpected answer {answer!r}"))
        return int(answer["pid"])

    def close(self) -> None:
        """Leave the template; one this process started ends (its kernels end with it within a second
        unless already stopped)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self._sock.close()
        if self._lifeline is not None:
            with contextlib.suppress(OSError):
                os.close(self._lifeline)
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._folder is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            with contextlib.suppress(OSError):
                os.rmdir(self._folder)


_shared: Template | None = None
_shared_lock = threading.Lock()


def _new_template() -> Template:
    joined = os.environ.get(ENV_TEMPLATE, "").strip()
    if joined:
        try:
            return Template.connect(joined)
        except OSError:  # gone: this process starts its own
            pass
    return Template.start()


def shared_template(preload: Iterable[str] = (), *, wait: bool = True) -> Template | None:
    """This process's template (on first use: the one ``PAYOPS_KERNEL_TEMPLATE`` names, else one started
    now) with ``preload`` imported; None when forking is off or no template can be had — the caller then
    starts kernels the usual way."""
    global _shared
    if not enabled():
        return None
    with _shared_lock:
        if _shared is None or _shared.closed:
            try:
                _shared = _new_template()
            except OSError:
                return None
            atexit.register(_shared.close)
        template = _shared
    try:
        template.preload(preload, wait=wait)
    except TemplateUnavailable:
        return None
    return template


def prepare(preload: Iterable[str]) -> None:
    """Start this process's template now and queue ``preload`` there, without waiting: its imports then
    overlap the runner's own work (preflight, the run's records) before the first kernel is needed."""
    shared_template(preload, wait=False)


class ForkedProcess:
    """The ``Popen`` face jupyter_client's provisioner needs, for a kernel that is not our child:
    a pidfd tells when it ended and carries the signals (no pid reuse race)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        try:
            self._fd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # already gone
            self._fd = None
            self.returncode = -1

    def _ended(self, timeout: float | None) -> bool:
        if self._fd is None:
            return True
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if ready:
            os.close(self._fd)
            self._fd = None
            self.returncode = -1  # the exit status is the template's to collect; "ended" is what matters
            return True
        return False

    def poll(self) -> int | None:
        return self.returncode if self._ended(0) else None

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended(timeout):
            raise subprocess.TimeoutExpired([str(self.pid)], timeout or 0)
        return self.returncode if self.returncode is not None else -1

    def send_signal(self, signum: int) -> None:
        """Signal the kernel; nothing once it ended (as ``Popen.send_signal``)."""
        if self.poll() is None and self._fd is not None:
            with contextlib.suppress(ProcessLookupError):  # ended between the poll and the signal
                signal.pidfd_send_signal(self._fd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def _provisioner_class() -> type:
    from jupyter_client.provisioning import LocalProvisioner

    class ForkProvisioner(LocalProvisioner):  # type: ignore[misc]
        """``LocalProvisioner`` whose kernel is forked from the template (see the module docstring)."""

        template: Template | None = None

        async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
            template = self.template
            args = _launcher_args(cmd)
            if template is None or args is None:
                return await super().launch_kernel(cmd, **kwargs)
            env = dict(kwargs.get("env") or os.environ)
            try:
                env["JPY_PARENT_PID"] = str(template.pid)
            except TemplateUnavailable:
                return await super().launch_kernel(cmd, **kwargs)
            if os.path.realpath(template.executable) != os.path.realpath(sys.executable):
                return await super().launch_kernel(cmd, **kwargs)  # another interpreter's (venv's) template
            env[ENV_TEMPLATE] = template.path
            cwd = str(kwargs.get("cwd") or os.getcwd())
            try:
                pid = template.fork(args, env, cwd)
            except TemplateUnavailable:
                return await super().launch_kernel(cmd, **kwargs)
            self.process = ForkedProcess(pid)
            self.pid = pid
            self.pgid = pid  # the kernel calls setsid(): its group is its pid
            self.cwd = cwd
            return self.connection_info

    return ForkProvisioner


_provisioner: type | None = None


def _launcher_args(cmd: list[str]) -> list[str] | None:
    """The arguments after ``python -m ipykernel_launcher`` when ``cmd`` is exactly that with this
    interpreter (the template is this interpreter); None for any other kernel command."""
    if len(cmd) >= 3 and cmd[1:3] == ["-m", "ipykernel_launcher"] and \
            os.path.realpath(cmd[0]) == os.path.realpath(sys.executable):
        return list(cmd[3:])
    return None


def attach(km: Any, preload: Iterable[str] = ()) -> bool:
    """Have ``km`` (a jupyter_client KernelManager, before ``start_kernel``) fork its kernel from this
    process's template, with ``preload`` (import statements) imported there first. False (``km``
    untouched) when forking is off or unavailable."""
    global _provisioner
    template = shared_template(preload, wait=False)
    if template is None:
        return False
    import uuid

    if _provisioner is None:
        _provisioner = _provisioner_class()
    km.kernel_id = km.kernel_id or str(uuid.uuid4())
    provisioner = _provisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
    provisioner.template = template
    km.provisioner = provisioner
    return True


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
