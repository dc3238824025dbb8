"""Ending the processes a job started, when the job is cut short.

An ``xnet run`` job interrupted by Ctrl-C, a timeout or a lost connection ends with its
worker; the processes its code started (``subprocess.run(["sleep", "100"])``) would
otherwise keep running on the host, as pdsh's and pssh's leave theirs. A worker shares
its process group with others (a popen worker with the controller's), so the group is
no handle: the worker's descendants are found through ``/proc`` (Linux) by parent pid.
A process that made itself a daemon (double fork, now a child of init) has left on
purpose and is not followed.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Callable, Dict, List

#: Seconds the descendants get between SIGTERM and SIGKILL.
TERM_GRACE = 0.5

#: What to do if the worker ends while a job runs (``run_interrupt_hooks``).
_hooks: List[Callable[[], None]] = []


def add_interrupt_hook(hook: Callable[[], None]) -> None:
    _hooks.append(hook)


def remove_interrupt_hook(hook: Callable[[], None]) -> None:
    try:
        _hooks.remove(hook)
    except ValueError:
        pass


def run_interrupt_hooks() -> bool:
    """Called by the worker on its way out; a job still registered was cut short.
    Whether there was one."""
    ran = bool(_hooks)
    while _hooks:
        hook = _hooks.pop()
        try:
            hook()
        except BaseException:  # ending must go on whatever one hook does
            pass
    return ran


def descendants(root: int) -> List[int]:
    """The pids below ``root`` (children first), from ``/proc``; empty where there is none.

    Each thread's ``children`` file names its children (Linux 3.5+): a few reads, where a
    scan of every process is hundreds, each of which waits for the GIL behind a busy
    main thread. Without those files, the scan."""
    if not os.path.exists(f"/proc/{root}/task/{root}/children"):
        return _scan(root)
    found: List[int] = []
    level = [root]
    while level:
        level = [child for pid in level for child in _children(pid)]
        found.extend(level)
    return found


def _children(pid: int) -> List[int]:
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []  # ended meanwhile
    children: List[int] = []
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children", "rb") as handle:
                children.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return children


def _scan(root: int) -> List[int]:
    parents: Dict[int, int] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        fields = _stat(int(name))
        if len(fields) > 1:
            parents[int(name)] = int(fields[1])
    found: List[int] = []
    level = [root]
    while level:
        level = [pid for pid, parent in parents.items() if parent in level]
        found.extend(level)
    return found


def end_descendants(grace: float = TERM_GRACE) -> None:
    """SIGTERM every process below this one, then SIGKILL what is left after ``grace``."""
    import signal
    import sys
    import time

    # The main thread may be busy in the job's code: hand the GIL back and forth quickly,
    # or each system call here waits a switch interval (5 ms) for it.
    sys.setswitchinterval(0.0001)
    me = os.getpid()
    pids = descendants(me)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(0.02)
        pids = [pid for pid in pids if _alive(pid)]
    for pid in descendants(me) + pids:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie child waiting to be reaped does not)."""
    state = _stat(pid)[:1]
    return bool(state) and state[0] != b"Z"


def _stat(pid: int) -> List[bytes]:
    """``/proc/PID/stat`` from the state on (state, ppid, ...); empty once it has ended.
    The command name before them may hold spaces and parentheses: cut at the last ")"."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return []
    return stat[stat.rfind(b")") + 2 :].split()
