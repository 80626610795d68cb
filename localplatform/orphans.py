"""Predictors that outlived their daemon, found and stopped.

On Linux a predictor gets SIGTERM when the daemon dies (ManagedProcess
`die_with_parent`); elsewhere, or for a predictor started before that existed, a
daemon killed with SIGKILL leaves its predictors running. Their PIDs are still in the
state file, so the next `down` (and the daemon's next start) can stop them: only those
PIDs, and only while the process there is provably the predictor the state file names,
since a PID can be reused by any other program once its process is gone.
"""

from __future__ import annotations

from pathlib import Path

from riskserve.localplatform.processes import pid_alive, stop_pid
from riskserve.localplatform.settings import PlatformSettings
from riskserve.localplatform.state import PlatformState


def state_path(settings: PlatformSettings) -> Path:
    return settings.state_dir / "platform" / "state.json"


def is_our_predictor(pid: int, http_port: int | None) -> bool:
    """True when `pid` runs `python -m riskserve.serving ... --http_port <http_port>`
    (or `-m riskserve.transformer`, a transformer revision), the command line the
    controller starts a revision with; the port was free when the revision started,
    so no other predictor holds it at the same time."""
    if http_port is None:
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # gone, or not ours to read
        return False
    if argv[1:3] not in (
        [b"-m", b"riskserve.serving"],
        [b"-m", b"riskserve.transformer"],
    ):
        return False
    port_flags = [i for i, arg in enumerate(argv[:-1]) if arg == b"--http_port"]
    return any(argv[i + 1] == str(http_port).encode() for i in port_flags)


def stop_orphans(settings: PlatformSettings, grace: float = 5.0) -> list[int]:
    """Stop every predictor the state file lists that still runs and is ours
    (SIGTERM, SIGKILL after `grace` seconds); the PIDs stopped. Call it only when no
    daemon runs: a running daemon's predictors are not orphans. The state file is left
    as it is: the daemon clears stale PIDs when it starts."""
    state = PlatformState.load(state_path(settings))
    stopped = []
    for service in state.services.values():
        for revision in (r for c in service.components() for r in c.revisions):
            pid = revision.pid
            if (
                pid
                and pid_alive(pid)
                and is_our_predictor(pid, revision.http_port)
                # the controller starts each predictor as the leader of its own
                # process group, which stop_pid signals (its workers with it)
                and stop_pid(pid, grace=grace)
            ):
                stopped.append(pid)
    return stopped
