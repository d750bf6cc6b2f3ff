"""Which process is this, is that one still alive, and what to do when a signal or a dead parent says stop.

MLflow runs and cache builds record `identity()`; a later command can then tell for certain that the
process behind a RUNNING run or a temporary file is gone (same host, and the pid absent, a zombie, or
started at another time: reused), and clean up after it. No MLflow or TensorFlow import here.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import threading
from pathlib import Path

HOST = socket.gethostname()
SHELLS = {"bash", "sh", "dash", "zsh", "ksh"}
PR_SET_PDEATHSIG = 1
_launcher: dict = {}   # the `mlflow run` process this one follows, once found


class Killed(SystemExit):
    """A stop signal turned into an exception, so `finally` blocks and run bookkeeping still happen;
    as a SystemExit it passes `except Exception` and exits with the shell's 128 + signal code."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum
        self.reason = f"killed by {signal.Signals(signum).name}"
        launcher = _launcher.get("pid")
        if launcher and not is_alive(launcher, _launcher.get("start")):
            self.reason += f" (its `mlflow run` launcher, pid {launcher}, had exited)"

    def __str__(self) -> str:
        return self.reason


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (which may hold spaces): state is [0], start time [19]."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return text[text.rindex(")") + 2:].split()


def start_time(pid: int) -> str:
    """When `pid` started, as `<boot id>:<clock ticks since boot>`; a reboot or a reused pid changes it.
    Empty where /proc is missing (not Linux)."""
    fields = _stat(pid)
    return f"{boot_id()}:{fields[19]}" if fields else ""


def identity() -> dict[str, str]:
    return {"host": HOST, "pid": str(os.getpid()), "start": start_time(os.getpid())}


def is_alive(pid: int, started: str | None = None) -> bool:
    """True unless `pid` (on this host) has certainly exited: absent, a zombie, or a different process."""
    if Path("/proc/self/stat").exists():
        fields = _stat(pid)
        if fields is None or fields[0] in ("Z", "X"):
            return False
        return not started or start_time(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def is_gone(host: str, pid: str | int, started: str | None = None) -> bool:
    """Only a process of this host can be known dead; anything unparsable counts as alive."""
    try:
        return host == HOST and not is_alive(int(pid), started)
    except ValueError:
        return False


def raise_on_stop_signals() -> dict:
    """Turn SIGTERM and SIGHUP into `Killed` in the main thread; returns the previous handlers
    (restore them with `restore_signals`). Elsewhere than the main thread, does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(signum, frame):
        raise Killed(signum)

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) in (signal.SIG_DFL, None):
            previous[signum] = signal.signal(signum, stop)
    return previous


def restore_signals(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def follow_launcher() -> None:
    """Under `mlflow run` (MLFLOW_RUN_ID set), stop with SIGTERM when the launcher dies.

    MLflow starts the entry point as `bash -c <command>`: bash usually execs a single command, so the
    launcher is our parent and the kernel's parent-death signal covers even its SIGKILL; where a shell
    stays in between (an activated virtualenv), a watcher thread polls the launcher instead."""
    if not os.environ.get("MLFLOW_RUN_ID") or _launcher or not Path("/proc/self/stat").exists():
        return
    pid = os.getppid()
    while pid > 1 and _name(pid) in SHELLS:
        pid = int(_stat(pid)[1]) if _stat(pid) else 1
    if pid <= 1 or "mlflow" not in _cmdline(pid):
        return   # not started by a live `mlflow run` (MLFLOW_RUN_ID exported by hand, or it died already)
    _launcher.update(pid=pid, start=start_time(pid))
    if pid == os.getppid() and _set_parent_death_signal(signal.SIGTERM):
        if os.getppid() != pid:   # it died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)
        return
    threading.Thread(target=_watch_launcher, args=(pid, _launcher["start"]), daemon=True,
                     name="gz-launcher-watch").start()


def _watch_launcher(pid: int, started: str, every: float = 0.5) -> None:
    stop = threading.Event()
    while not stop.wait(every):
        if not is_alive(pid, started):
            os.kill(os.getpid(), signal.SIGTERM)
            return


def _set_parent_death_signal(signum: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
