"""Real OpenSSH ``sshd`` processes on 127.0.0.2, 127.0.0.3, ... for the ssh tests.

Each host is one ``sshd -f CONFIG`` with its own ``ListenAddress`` (a free port),
throwaway ed25519 host key, ``PidFile`` and a shared ``AuthorizedKeysFile`` in a temporary
directory; it is ready when its PID file exists (sshd writes it after binding). sshd
daemonizes, so it is not a child of the test process (the leak check of ``conftest.py``
sees nothing), and teardown stops exactly the PIDs read from those PID files. A run that
never reaches teardown (killed by ``timeout`` or SIGKILL) is covered by a guard process
(``start_guard``) that waits for the run's end and then stops the daemons it left.

The plain functions (``SshdCluster``) are also used by ``bench/bench_ssh.py``. Fixtures:
``sshd_hosts(n)`` (session factory: the first ``n`` hosts), ``sshd_host`` (the first),
``sudo_users`` (test users with a sudoers drop-in, named for the run, guarded the same way;
root only). A host is reachable as
``host.spec()`` = ``ssh=-p PORT -i KEY -o UserKnownHostsFile=KH root@127.0.0.K``.
"""

from __future__ import annotations

import getpass
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest
from proc_helpers import free_port, pid_alive

__all__ = [
    "SUDO_PASSWORD",
    "SshdCluster",
    "SshdHost",
    "SudoUsers",
    "find_sshd",
    "sshd_cluster",
    "sshd_host",
    "sshd_hosts",
    "sudo_users",
]

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
READY_TIMEOUT = 10.0
#: Users the ``sudo_users`` fixture creates: one with a NOPASSWD rule, one that needs one.
#: Each run's names end with its own tag (``sudo_user_tag``): runs at once never collide.
SUDO_NOPASS_USER = "xnettest"
SUDO_PASS_USER = "xnetpass"
SUDO_PASSWORD = "xnet-test-pw"

SSHD_CONFIG = """\
ListenAddress {address}:{port}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
PrintLastLog no
MaxStartups {max_startups}
MaxSessions 50
SetEnv SHLVL=1
LogLevel {log_level}
"""


def find_sshd() -> Optional[str]:
    """The absolute path of sshd (it refuses to re-exec from a relative one), or None."""
    for candidate in SSHD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("sshd")
    return os.path.abspath(found) if found else None


def write_ed25519_key(path: Path) -> str:
    """Write a new private key (OpenSSH format, mode 0600); return its public line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    line = public.decode()
    path.with_name(path.name + ".pub").write_text(line + "\n")
    return line


def descendants(pid: int) -> List[int]:
    """All processes below ``pid`` (Linux /proc), children first."""
    found: List[int] = []
    queue = [pid]
    while queue:
        parent = queue.pop(0)
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(children)
            queue.extend(children)
    return found


@dataclass(frozen=True)
class SshdHost:
    """One running sshd and what a client needs to reach it."""

    address: str
    port: int
    pid: int
    key: Path
    known_hosts: Path
    host_key_line: str
    log: Path

    def spec(self, user: Optional[str] = None, extra: str = "", python: str = "") -> str:
        """An execnet spec reaching this host (``extra``: more options, e.g. ``-o X=Y``)."""
        value = self.ssh_value(user, extra)
        spec = f"ssh={value}"
        return spec + (f"//python={python}" if python else "")

    def ssh_value(self, user: Optional[str] = None, extra: str = "") -> str:
        user = user or getpass.getuser()
        options = f"-p {self.port} -i {self.key} -o UserKnownHostsFile={self.known_hosts}"
        return f"{options} {extra} {user}@{self.address}".replace("  ", " ")

    def known_hosts_line(self) -> str:
        return f"[{self.address}]:{self.port} {self.host_key_line}"

    def connection_pids(self) -> List[int]:
        """The per-connection sshd processes under this daemon (not the user's commands)."""
        pids = []
        for pid in descendants(self.pid):
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if comm == "sshd":
                pids.append(pid)
        return pids


class SshdCluster:
    """sshd hosts on 127.0.0.2, .3, ... sharing one client key and one known_hosts file."""

    def __init__(
        self,
        sshd: str,
        workdir: Optional[Path] = None,
        max_startups: str = "200:30:400",
        log_level: str = "ERROR",
    ) -> None:
        self.sshd = sshd
        #: sshd's MaxStartups for the hosts started from now on ("10:30:100": its default).
        self.max_startups = max_startups
        #: What each host's log file (``SshdHost.log``) gets: INFO has every connection.
        self.log_level = log_level
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="xnet-sshd-"))
        self.dir.chmod(0o755)  # test users' sshd must read authorized_keys here
        self.keys = self.dir / "keys"
        self.keys.mkdir(mode=0o700, exist_ok=True)
        self.key = self.keys / "id_ed25519"
        self.authorized_keys = self.dir / "authorized_keys"
        self.authorized_keys.write_text(write_ed25519_key(self.key) + "\n")
        self.authorized_keys.chmod(0o644)
        self.known_hosts = self.dir / "known_hosts"
        self.known_hosts.write_text("")
        self.hosts: List[SshdHost] = []
        ensure_privsep_dir()
        self._guard: Optional[int] = start_guard(str(self.dir))

    def start(self, count: int) -> List[SshdHost]:
        """Make sure ``count`` hosts run (started concurrently); return the first ``count``."""
        pending = []
        for index in range(len(self.hosts), count):
            pending.append(self._launch(f"127.0.0.{index + 2}"))
        for launch in pending:
            host = launch()
            self.hosts.append(host)
            with self.known_hosts.open("a") as out:
                out.write(host.known_hosts_line() + "\n")
        return self.hosts[:count]

    def _launch(self, address: str) -> Callable[[], SshdHost]:
        name = address.replace(".", "_")
        host_key = self.keys / f"host_{name}"
        host_key_line = write_ed25519_key(host_key)
        pid_file = self.dir / f"sshd_{name}.pid"
        log = self.dir / f"sshd_{name}.log"
        config = self.dir / f"sshd_{name}.conf"
        attempts = 0

        def spawn() -> int:
            port = free_port(address)
            config.write_text(
                SSHD_CONFIG.format(
                    address=address,
                    port=port,
                    host_key=host_key,
                    pid_file=pid_file,
                    authorized_keys=self.authorized_keys,
                    max_startups=self.max_startups,
                    log_level=self.log_level,
                )
            )
            pid_file.unlink(missing_ok=True)
            # sshd daemonizes: the launcher exits at once, the daemon writes the PID file.
            subprocess.run([self.sshd, "-f", str(config), "-E", str(log)], check=True, timeout=30)
            return port

        port = spawn()

        def finish() -> SshdHost:
            nonlocal port, attempts
            while True:
                pid = wait_for_pid_file(pid_file, READY_TIMEOUT)
                if pid is not None:
                    return SshdHost(
                        address, port, pid, self.key, self.known_hosts, host_key_line, log
                    )
                attempts += 1
                if attempts >= 3:  # the port was probably taken meanwhile: retried twice
                    text = log.read_text() if log.exists() else ""
                    raise RuntimeError(f"sshd on {address} did not start: {text.strip()}")
                port = spawn()

        return finish

    def stop(self) -> None:
        """Stop exactly the sshd daemons this cluster started, and their connections."""
        for host in self.hosts:
            stop_pid(host.pid)
        self.hosts.clear()
        if self._guard is not None:
            os.close(self._guard)  # nothing left for it to stop: it ends
            self._guard = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SshdCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: The guard: detached from the run's process tree (forked, the parent exits), it reads
#: its pipe until every write end is closed, i.e. until the run ends however it ends, then
#: SIGTERMs the sshd daemons whose PID files are in the directory (checking that each PID
#: is still an sshd of that directory, not a reused number).
GUARD = """
import glob, os, signal, sys
if os.fork():
    os._exit(0)
os.setsid()
fd, directory = int(sys.argv[1]), sys.argv[2]
while os.read(fd, 4096):
    pass
for name in glob.glob(os.path.join(directory, "sshd_*.pid")):
    try:
        pid = int(open(name).read())
        cmdline = open("/proc/%d/cmdline" % pid, "rb").read()
    except (OSError, ValueError):
        continue
    if directory.encode() in cmdline:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
"""


def start_guard(*args: str, script: str = GUARD) -> int:
    """Start a guard (``GUARD``: ``args`` is the daemons' directory); the write end of its
    pipe, which this process holds until it cleans up itself or ends."""
    read_end, write_end = os.pipe()
    try:
        subprocess.run(
            [sys.executable, "-c", script, str(read_end), *args],
            pass_fds=(read_end,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # holding the run's pipes would delay their readers
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=30,
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return write_end


def ensure_privsep_dir() -> None:
    """sshd refuses to start without its privilege separation directory."""
    path = Path("/run/sshd")
    if not path.is_dir() and os.geteuid() == 0:
        path.mkdir(mode=0o755, parents=True, exist_ok=True)


def wait_for_pid_file(pid_file: Path, timeout: float) -> Optional[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = pid_file.read_text().strip()
        except OSError:
            text = ""
        if text.isdigit():
            return int(text)
        time.sleep(0.005)
    return None


def stop_pid(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM one daemon we started (it ends its connections), SIGKILL if it lingers."""
    if not pid_alive(pid):
        return
    children = descendants(pid)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    for victim in [pid, *children]:
        if pid_alive(victim):
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass


# -- sudo test users -----------------------------------------------------------------------


@dataclass(frozen=True)
class SudoUsers:
    """Local users for the sudo tests: ``nopass`` may sudo freely, ``passwd`` needs one."""

    nopass: str
    passwd: str
    password: str
    sudoers_file: Path
    guard: int  # the write end of the pipe of the guard that removes them if the run dies


def sudo_user_tag() -> str:
    """This run's suffix for user names: its PID and a random part (PIDs are reused)."""
    return f"{os.getpid()}x{secrets.token_hex(2)}"


def create_sudo_users(home_root: Path) -> SudoUsers:
    """Two users of this run's own and their sudoers drop-in. A guard removes them when
    the run ends without removing them (killed); a failure half-way removes what was made."""
    tag = sudo_user_tag()
    nopass, passwd = SUDO_NOPASS_USER + tag, SUDO_PASS_USER + tag
    sudoers = Path("/etc/sudoers.d") / f"xnet-test-{tag}"
    guard = start_guard(str(sudoers), nopass, passwd, script=USERS_GUARD)
    users = SudoUsers(nopass, passwd, SUDO_PASSWORD, sudoers, guard)
    try:
        for user in (nopass, passwd):
            subprocess.run(
                ["useradd", "-m", "-d", str(home_root / user), "-s", "/bin/sh", "-p", "*", user],
                check=True,
                capture_output=True,
            )
        subprocess.run(["chpasswd"], input=f"{passwd}:{SUDO_PASSWORD}\n", text=True, check=True)
        rules = (
            f"{nopass} ALL=(ALL:ALL) NOPASSWD: ALL\n"
            f"{passwd} ALL=(ALL:ALL) ALL\n"
            f"Defaults:{passwd} !mail_badpass, !lecture\n"
        )
        fd = os.open(sudoers, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o440)
        with os.fdopen(fd, "w") as out:
            out.write(rules)
        check = subprocess.run(["visudo", "-cf", str(sudoers)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"bad sudoers drop-in: {check.stdout}{check.stderr}")
    except BaseException:
        remove_sudo_users(users)
        raise
    return users


def remove_sudo_users(users: SudoUsers) -> None:
    users.sudoers_file.unlink(missing_ok=True)
    for user in (users.nopass, users.passwd):
        subprocess.run(["userdel", "-r", user], capture_output=True)
    os.close(users.guard)  # nothing left for it to remove: it ends


#: The users' guard: as ``GUARD``, it waits for the run's end, then removes the sudoers
#: drop-in and the users (``-f``: their sessions may outlive a killed run for a moment).
USERS_GUARD = """
import os, subprocess, sys
if os.fork():
    os._exit(0)
os.setsid()
fd, sudoers, users = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
while os.read(fd, 4096):
    pass
try:
    os.unlink(sudoers)
except OSError:
    pass
for user in users:
    subprocess.run(["userdel", "-r", "-f", user], capture_output=True)
"""


def client_home(hosts: List[SshdHost], home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``HOME`` for the ssh client: a known_hosts naming ``hosts``, no config, no agent."""
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text("".join(h.known_hosts_line() + "\n" for h in hosts))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


# -- fixtures ------------------------------------------------------------------------------


def _unavailable(message: str) -> None:
    """Skip, or fail when ``XNET_REQUIRE_SSHD=1`` (CI) says sshd must be there."""
    if os.environ.get("XNET_REQUIRE_SSHD") == "1":
        pytest.fail(message + " (XNET_REQUIRE_SSHD=1 makes this a failure)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def sshd_cluster() -> Iterator[SshdCluster]:
    """The session's sshd hosts (started on demand by ``sshd_hosts``)."""
    sshd = find_sshd()
    if sshd is None:
        _unavailable(
            "OpenSSH sshd not found; install it (apt-get install openssh-server) to run "
            "the ssh tests"
        )
    assert sshd is not None
    cluster = SshdCluster(sshd)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def sshd_hosts(sshd_cluster: SshdCluster) -> Callable[[int], List[SshdHost]]:
    """Factory: ``sshd_hosts(n)`` returns n running hosts (127.0.0.2 ...), shared by the session.

    Call it from a fixture or at the top of a test; hosts are started once and kept.
    """

    def start(count: int) -> List[SshdHost]:
        try:
            return sshd_cluster.start(count)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            _unavailable(f"sshd would not start ({exc}); the ssh tests need it")
            raise

    return start


@pytest.fixture(scope="session")
def sshd_host(sshd_hosts: Callable[[int], List[SshdHost]]) -> SshdHost:
    """The first sshd host (127.0.0.2)."""
    return sshd_hosts(1)[0]


@pytest.fixture(scope="session")
def sudo_users(sshd_cluster: SshdCluster) -> Iterator[SudoUsers]:
    """Two local users and a sudoers drop-in, removed at teardown (skips unless root)."""
    if os.geteuid() != 0:
        pytest.skip("the sudo tests create users and a sudoers rule: run them as root")
    if shutil.which("sudo") is None or shutil.which("useradd") is None:
        pytest.skip("sudo and useradd are needed (apt-get install sudo passwd)")
    users = create_sudo_users(sshd_cluster.dir)
    try:
        yield users
    finally:
        remove_sudo_users(users)
