"""Kernels forked from the template process (payops.kernelfork): each one a fresh ipykernel with the
runner's environment and working directory of the moment, interruptible, in its own process group, ended
with the runner — and kernels start the usual way whenever the template cannot fork."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from jupyter_client.manager import KernelManager

from payops import kernelfork

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not kernelfork.enabled(), reason="kernel forking unsupported")]


def _run(km: KernelManager, code: str, timeout: float = 30) -> list[str]:
    """Execute ``code`` in the kernel; its stdout chunks and error names."""
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        out: list[str] = []

        def hook(msg: dict) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append("ERROR " + msg["content"]["ename"])

        kc.execute_interactive(code, output_hook=hook, timeout=timeout)
        return out
    finally:
        kc.stop_channels()


@pytest.fixture()
def fresh_template(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This test's own template (a killed or threaded one must not outlive the test); the test process's
    shared one is set aside and given back after."""
    saved = kernelfork._shared
    kernelfork._shared = None
    monkeypatch.delenv(kernelfork.ENV_TEMPLATE, raising=False)
    yield
    if kernelfork._shared is not None:
        kernelfork._shared.close()
    kernelfork._shared = saved


def _manager() -> KernelManager:
    """A kernel manager on unix sockets in a folder of its own, as the runner's (pipeline.StepKernels): a
    loopback port picked here could be taken by another test process before the kernel binds it."""
    return KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(tempfile.mkdtemp(prefix="kf-")) / "k"))


def _forked_kernel(preload: tuple[str, ...] = ()) -> KernelManager:
    km = _manager()
    assert kernelfork.attach(km, preload)
    km.start_kernel(extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    return km


PROBE = textwrap.dedent("""\
    import json, os, sys
    print(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0), "sid": os.getsid(0),
                      "cwd": os.getcwd(), "probe": os.environ.get("PAYOPS_FORK_PROBE"),
                      "colorsys": "colorsys" in sys.modules,
                      "wave": "wave" in sys.modules, "names": sorted(n for n in globals() if n[0] != "_"
                      and n not in ("In", "Out", "exit", "quit", "get_ipython", "open"))}))
    """)


def test_a_forked_kernel_has_the_environment_and_directory_of_its_launch(
        fresh_template: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = kernelfork.shared_template(["import colorsys"])
    assert template is not None
    kernelfork.prepare(["import wave"])  # queued, not waited for: the next fork comes after it
    monkeypatch.setenv("PAYOPS_FORK_PROBE", "set after the template started")  # the template never saw it
    monkeypatch.chdir(tmp_path)
    kms = [_forked_kernel(), _forked_kernel()]
    try:
        pids = [km.provisioner.pid for km in kms]
        seen = [json.loads("".join(_run(km, PROBE))) for km in kms]
    finally:
        for km in kms:
            km.shutdown_kernel(now=True)
    for pid, probe in zip(pids, seen, strict=True):
        assert probe["pid"] == pid  # the process the provisioner signals and polls
        assert probe["ppid"] == template.pid  # forked by the template, not started by this process
        assert probe["pgid"] == probe["sid"] == probe["pid"]  # its own session: signals reach only it
        assert probe["cwd"] == str(tmp_path)
        assert probe["probe"] == "set after the template started"
        assert probe["colorsys"] is True and probe["wave"] is True  # the template's imports are there
        assert probe["names"] == ["json", "os", "sys"]  # and nothing else: a clean namespace
    assert seen[0]["pid"] != seen[1]["pid"]


def test_a_forked_kernel_is_interrupted_and_killed_like_a_launched_one(fresh_template: None) -> None:
    km = _forked_kernel()
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        msg_id = kc.execute("import time\ntime.sleep(60)")
        time.sleep(1.0)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=20)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        kc.stop_channels()
        assert km.is_alive()
        pid = km.provisioner.pid
    finally:
        km.shutdown_kernel(now=True)
    assert not km.is_alive()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_kernels_start_the_usual_way_when_the_template_cannot_fork(fresh_template: None) -> None:
    # a template with a second thread refuses to fork (a forked threaded process can deadlock)
    template = kernelfork.shared_template([
        "import threading, time\nthreading.Thread(target=time.sleep, args=(120,), daemon=True).start()"])
    assert template is not None
    km = _forked_kernel()
    try:
        probe = json.loads("".join(_run(km, PROBE)))
        assert probe["ppid"] == os.getpid()  # launched by this process (LocalProvisioner's Popen)
    finally:
        km.shutdown_kernel(now=True)
    # a template that died is replaced by a kernel started the usual way, then by a new template
    os.kill(template.pid, signal.SIGKILL)
    km = _forked_kernel()
    try:
        assert json.loads("".join(_run(km, PROBE)))["ppid"] == os.getpid()
    finally:
        km.shutdown_kernel(now=True)
    assert template.closed
    fresh = kernelfork.shared_template()
    assert fresh is not None and fresh is not template and fresh.pid != template.pid


def test_the_switch_turns_forking_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYOPS_KERNEL_FORK", "0")
    km = _manager()
    assert kernelfork.attach(km) is False
    assert km.provisioner is None


RUNNER = textwrap.dedent("""\
    import json, sys, tempfile
    from jupyter_client.manager import KernelManager
    from payops import kernelfork
    kms = []
    for _ in range(2):
        km = KernelManager(kernel_name="python3", transport="ipc", ip=tempfile.mkdtemp() + "/k")
        assert kernelfork.attach(km)
        km.start_kernel(extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
        kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=60); kc.stop_channels()
        kms.append(km)
    print(json.dumps({"template": kernelfork._shared.pid, "kernels": [km.provisioner.pid for km in kms]}),
          flush=True)
    import time; time.sleep(600)
    """)


def _killed_runner(tmp_path: Path, env: dict[str, str]) -> dict:
    """Start RUNNER (two forked kernels), SIGKILL it; its pids."""
    proc = subprocess.Popen([sys.executable, "-c", RUNNER], stdout=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        pids = json.loads(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
    return pids


def _gone(pids: list[int], within: float = 15) -> list[int]:
    """The pids still running after ``within`` seconds (zombies count as gone)."""
    deadline = time.monotonic() + within
    while True:
        left = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def test_a_killed_runner_takes_its_template_and_kernels_with_it(tmp_path: Path) -> None:
    """SIGKILL the process that forked kernels from its own template: the template reads end-of-file and
    exits, and the kernels end with their runner — nothing is left running."""
    env = {k: v for k, v in os.environ.items() if k != kernelfork.ENV_TEMPLATE}
    pids = _killed_runner(tmp_path, env)
    assert _gone([pids["template"], *pids["kernels"]]) == []


def test_a_killed_runner_that_joined_a_template_takes_its_kernels_not_the_template(
        fresh_template: None, tmp_path: Path) -> None:
    """A runner that joined another process's template (``PAYOPS_KERNEL_TEMPLATE``) and is SIGKILLed: its
    kernels end (each watches its runner), the template goes on serving the others."""
    template = kernelfork.shared_template()
    assert template is not None
    pids = _killed_runner(tmp_path, os.environ | {kernelfork.ENV_TEMPLATE: template.path})
    assert pids["template"] == template.pid  # joined, not started its own
    assert _gone(pids["kernels"]) == []
    assert _gone([template.pid], within=0) == [template.pid]
    km = _forked_kernel()  # and still forks
    try:
        assert json.loads("".join(_run(km, PROBE)))["ppid"] == template.pid
    finally:
        km.shutdown_kernel(now=True)


def test_a_bad_or_vanished_client_does_not_stop_the_template(fresh_template: None) -> None:
    import socket

    template = kernelfork.shared_template()
    assert template is not None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.connect(template.path)
        reader = raw.makefile("rb")
        assert json.loads(reader.readline())["template"] == template.pid
        raw.sendall(b"not json\n")
        assert json.loads(reader.readline())["error"].startswith("bad request")
        raw.sendall(b'{"args": ["-f"')  # and gone mid-request
    km = _forked_kernel()
    try:
        assert json.loads("".join(_run(km, PROBE)))["ppid"] == template.pid  # still forking
    finally:
        km.shutdown_kernel(now=True)


def test_a_template_of_another_interpreter_is_not_used(fresh_template: None) -> None:
    template = kernelfork.shared_template()
    assert template is not None
    template.executable = "/opt/another-venv/bin/python"  # as its greeting would say
    km = _forked_kernel()
    try:
        assert json.loads("".join(_run(km, PROBE)))["ppid"] == os.getpid()  # started the usual way
    finally:
        km.shutdown_kernel(now=True)
