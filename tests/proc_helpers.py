"""Process, polling and port helpers shared by the tests (Linux /proc, loopback)."""

from __future__ import annotations

import selectors
import socket
import threading
import time
from typing import Callable, List, Optional, Tuple


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


class IdleFlood:
    """Idle TCP connections to ``port``: they send nothing, and each one is reopened when
    the server drops it, at once (``delay`` 0) or ``delay`` seconds later. One per item
    of ``sources``, bound to that address (127.0.0.K stands for another host)."""

    def __init__(self, port: int, sources: List[str], delay: float = 0.0) -> None:
        self.port = port
        self.sources = sources
        self.delay = delay
        self.dropped = 0
        self.greeted = 0  # connections the server has sent something to
        self._later: List[Tuple[float, str]] = []
        self._stopping = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._thread = threading.Thread(target=self._run, name="idle-flood", daemon=True)

    def __enter__(self) -> IdleFlood:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(10)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()

    def _connect(self, source: str) -> None:
        while not self._stopping.is_set():
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), 1.0, (source, 0))
            except OSError:  # the listen backlog is full: try again
                time.sleep(0.01)
                continue
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ, [source, False])
            return

    def _run(self) -> None:
        for source in self.sources:
            self._connect(source)
        while not self._stopping.is_set():
            now = time.monotonic()
            for item in [item for item in self._later if item[0] <= now]:
                self._later.remove(item)
                self._connect(item[1])
            for key, _ in self._selector.select(0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    if not key.data[1]:
                        key.data[1] = True
                        self.greeted += 1
                    continue
                self.dropped += 1
                self._selector.unregister(sock)
                sock.close()
                if self.delay:
                    self._later.append((time.monotonic() + self.delay, key.data[0]))
                else:
                    self._connect(key.data[0])
