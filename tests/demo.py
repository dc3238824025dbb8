"""``make demo``: xnet on ``inventories/demo.yaml`` (runs anywhere), then over ssh on three
loopback OpenSSH servers started for the purpose (127.0.0.2-4, throwaway keys; skipped
where ``/usr/sbin/sshd`` is missing), one of them also carrying a worker ``via`` it.

Each command is printed as a shell would show it, then run; the servers are stopped at the
end, and only they.
"""

from __future__ import annotations

import getpass
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sshd_fixtures import SshdCluster, find_sshd  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CANARY = (
    'import os; print("role:", os.environ["ROLE"]); '
    'assert os.environ["ROLE"] != "canary", "canary is broken"'
)
LOCAL_COMMANDS = [
    ["hosts", "-i", "inventories/demo.yaml", "--tree"],
    ["run", "-i", "inventories/demo.yaml", CANARY],
    ["sh", "-i", "inventories/demo.yaml", "-H", "web,!web03", "echo $ROLE"],
    ["ping", "-i", "inventories/demo.yaml"],
]
SSH_INVENTORY = """\
# Three loopback sshd hosts (make demo), and a worker started through ssh1's gateway.
groups:
  ssh:
    hosts:
      ssh1: {{address: 127.0.0.2, port: {ports[0]}}}
      ssh2: {{address: 127.0.0.3, port: {ports[1]}}}
      ssh3: {{address: 127.0.0.4, port: {ports[2]}}}
    vars:
      user: {user}
      identity_file: {key}
      known_hosts_file: {known_hosts}
      python: {python}
  relayed:
    hosts:
      ssh1-popen: {{transport: popen, via: ssh1}}
"""
SSH_COMMANDS = [
    ["ping", "-i", "{inventory}"],
    ["sh", "-i", "{inventory}", "-H", "ssh", "echo $SSH_CONNECTION | cut -d' ' -f3; whoami"],
    ["run", "-i", "{inventory}", "import os, sys; print(sys.version.split()[0], os.getcwd())"],
]


def xnet(args: list[str]) -> int:
    print(f"\n$ xnet {shlex.join(args)}", flush=True)
    environ = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "execnet_cli", *args]
    return subprocess.run(command, cwd=REPO, env=environ, check=False).returncode


def main() -> None:
    for args in LOCAL_COMMANDS:
        xnet(args)
    sshd = find_sshd()
    if sshd is None:
        print("\n(no /usr/sbin/sshd here: the ssh part is skipped; apt-get install openssh-server)")
        return
    with (
        tempfile.TemporaryDirectory(prefix="xnet-demo-") as workdir,
        SshdCluster(sshd) as cluster,  # its own directory, removed when stopped
    ):
        hosts = cluster.start(3)
        inventory = Path(workdir) / "ssh.yaml"
        inventory.write_text(
            SSH_INVENTORY.format(
                ports=[h.port for h in hosts],
                user=getpass.getuser(),
                key=cluster.key,
                known_hosts=cluster.known_hosts,
                python=sys.executable,
            )
        )
        print(f"\n# {inventory}:\n{inventory.read_text()}", end="")
        for args in SSH_COMMANDS:
            xnet([a.format(inventory=inventory) for a in args])


if __name__ == "__main__":
    main()
