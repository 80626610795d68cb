"""Starting and stopping the platform's own server processes on loopback.

Every process is started by us, tracked by its PID (and a pidfile when it must outlive
the command that started it), and stopped only by that PID: we never kill by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout):
        return True
    return False


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


class ProcessFailed(RuntimeError):
    """A managed process exited or never became ready."""


@dataclass
class ManagedProcess:
    """One server process we started, with its log file and optional pidfile."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    pidfile: Path | None = None
    die_with_parent: bool = False
    """Linux: the child gets SIGTERM when the thread that started it dies, even by
    SIGKILL (prctl PR_SET_PDEATHSIG, set by a small launcher that then execs the
    command: `with_parent_death_signal`), so it cannot outlive a crashed parent. SIGTERM,
    not SIGKILL, so that a predictor still flushes its inference log. The kernel ties
    the signal to the starting *thread*, not the process, so `start()` must run on the
    main thread (the daemon's controller starts predictors from its event loop there);
    anywhere else it raises. A no-op on other systems, where the parent's next
    `up`/`down` stops what is left (riskserve.localplatform.orphans)."""
    popen: subprocess.Popen | None = field(default=None, init=False, repr=False)

    def start(self) -> ManagedProcess:
        argv = list(self.argv)
        if self.die_with_parent:
            if threading.current_thread() is not threading.main_thread():
                raise RuntimeError(
                    f"{self.name}: die_with_parent needs start() on the main thread; "
                    "from any other, the child would get SIGTERM when that thread ends"
                )
            argv = with_parent_death_signal(argv)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        env = None if self.env is None else dict(self.env)  # None: inherit ours
        self.popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.cwd,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not the child
        )
        log.close()
        if self.pidfile is not None:
            self.pidfile.parent.mkdir(parents=True, exist_ok=True)
            self.pidfile.write_text(str(self.popen.pid))
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was not started"
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has exited; None while it runs, or before
        it was started."""
        return None if self.popen is None else self.popen.returncode

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, url: str, timeout: float = 60.0) -> ManagedProcess:
        """Block until `url` answers 2xx; fail with the log tail if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProcessFailed(
                    f"{self.name} exited with code {self.returncode} before it was "
                    f"ready; last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if http_ok(url):
                return self
            time.sleep(0.1)
        self.stop()
        raise ProcessFailed(
            f"{self.name} was not ready at {url} within {timeout:.0f} s; last lines of "
            f"{self.log_path}:\n{self.log_tail()}"
        )

    def stop(self, grace: float = 10.0) -> None:
        if self.popen is not None:
            stop_pid(self.popen.pid, grace, popen=self.popen)
        if self.pidfile is not None:
            self.pidfile.unlink(missing_ok=True)


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def exit_with_parent(parent_pid: int, every_s: float = 0.5) -> None:
    """Called in a child that is already running (a multiprocessing worker's
    initializer): a daemon thread ends the process once its parent is gone (the
    child is then reparented). Polling, not PR_SET_PDEATHSIG: the kernel ties that
    signal to the thread that started the child, and an executor may start its
    workers from any thread."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


# The child's first program: ask the kernel for SIGTERM when the parent (the thread
# that started it) dies, check that it has not died already, then become the real
# command (exec keeps the PID and the parent-death signal). It runs in a process of
# its own, so no Python code runs between fork and exec in the parent's copy: a
# preexec_fn did, and with it the parent's at-fork hooks, of which grpc's (the
# gateway serves gRPC) sometimes killed the child before it could exec.
_LAUNCH = (
    "import ctypes, os, signal, sys\n"
    "prctl = ctypes.CDLL(None, use_errno=True).prctl\n"
    f"if prctl({_PR_SET_PDEATHSIG}, signal.SIGTERM, 0, 0, 0) != 0:\n"
    "    sys.exit('prctl(PR_SET_PDEATHSIG) failed')\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def with_parent_death_signal(argv: list[str]) -> list[str]:
    """`argv` started through `_LAUNCH`, which sets the parent-death signal (Linux;
    elsewhere `argv` unchanged). `argv[0]` must be a path (it is exec'd as is)."""
    if not sys.platform.startswith("linux"):
        return argv
    return [sys.executable, "-I", "-S", "-c", _LAUNCH, str(os.getpid()), *argv]


def stop_pid(
    pid: int, grace: float = 10.0, popen: subprocess.Popen | None = None
) -> bool:
    """SIGTERM the process group we started as `pid`, SIGKILL after `grace` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if popen is not None:
            if popen.poll() is not None:
                return True
        elif not pid_alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if popen is not None:
        popen.wait(timeout=5)
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    return True


def read_pidfile(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None
