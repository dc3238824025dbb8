"""Process, polling and port helpers shared by the tests (Linux /proc, loopback)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Callable, List, Optional


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """Wait for ``pid`` to end (or become a zombie)."""
    return wait_until(lambda: not pid_alive(pid), timeout)


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at ``address`` (just bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def run_in_threads(
    function: Callable[[], object], count: int, timeout: float = 60
) -> List[Exception]:
    """Call ``function`` in ``count`` threads released at the same moment; what they raised."""
    start = threading.Barrier(count)
    errors: List[Exception] = []

    def run() -> None:
        start.wait()
        try:
            function()
        except Exception as exc:  # returned to the caller
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return errors


#: The user the popen sudo tests become.
SUDO_USER = "nobody"


def sudo_unavailable(user: str = SUDO_USER) -> Optional[str]:
    """Why ``sudo -n -u USER`` cannot be tested here (with how to enable it), or None."""
    import shutil
    import subprocess

    enable = (
        "install sudo (apt-get install sudo) and run the tests as root, or allow this user "
        f"`sudo -n -u {user}` with a NOPASSWD rule, to run the popen sudo tests"
    )
    if shutil.which("sudo") is None:
        return f"sudo is not installed: {enable}"
    probe = subprocess.run(["sudo", "-n", "-u", user, "--", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"sudo -n -u {user} refused ({probe.stderr.strip()}): {enable}"
    return None
