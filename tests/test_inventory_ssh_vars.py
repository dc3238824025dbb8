"""ssh options and a known-hosts file as inventory variables; Ansible's ssh args read;
known Ansible variables that xnet does not use are reported, never silently ignored."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sshd_fixtures import SshdHost

from execnet_cli.cli import main
from execnet_cli.inventory import Inventory, InventoryError


def xnet(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_ssh_options_and_known_hosts_file_reach_the_spec() -> None:
    inventory = Inventory.from_text(
        "groups: {w: {hosts: a, vars: {ssh_options: {StrictHostKeyChecking: accept-new,"
        " ServerAliveInterval: 5, Compression: false}, known_hosts_file: /k/h}}}\n"
    )
    host = inventory.host("a")
    assert host.ssh_options == (
        ("stricthostkeychecking", "accept-new"),
        ("serveraliveinterval", "5"),
        ("compression", "no"),
        ("userknownhostsfile", "/k/h"),
    )
    assert host.spec().startswith("ssh=-o stricthostkeychecking=accept-new -o ")
    assert host.xspec().fields.ssh is not None
    assert host.as_dict()["ssh_options"]["userknownhostsfile"] == "/k/h"


def test_ansible_ssh_args_and_host_key_checking_are_read() -> None:
    inventory = Inventory.from_text(
        "all:\n  hosts:\n    a:\n"
        "      ansible_ssh_common_args: '-o StrictHostKeyChecking=accept-new -J ops@bastion'\n"
        "      ansible_ssh_extra_args: -o ServerAliveInterval=9\n"
        "    b: {ansible_host_key_checking: false}\n"
    )
    assert inventory.host("a").ssh_options == (
        ("stricthostkeychecking", "accept-new"),
        ("proxyjump", "ops@bastion"),
        ("serveraliveinterval", "9"),
    )
    assert inventory.host("b").ssh_options == (("stricthostkeychecking", "accept-new"),)
    assert inventory.notices == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "groups: {w: {hosts: a, vars: {ssh_options: {ForwardAgent: 'yes'}}}}\n",
            "<string>:1:59: ssh_options: the ssh option ForwardAgent is not supported",
        ),
        (
            "groups: {w: {hosts: a, vars: {ssh_options: {Port: 2222}}}}\n",
            "ssh_options: Port has a variable of its own: use 'port'",
        ),
        (
            "groups: {w: {hosts: a, vars: {ssh_options: -o Port=2}}}\n",
            "ssh_options: expected a mapping of Option: value, got a string",
        ),
        (
            "all:\n  hosts:\n    a: {ansible_ssh_common_args: -X}\n",
            "<string>:3:34: ansible_ssh_common_args: the ssh flag -X is not supported",
        ),
        (
            "all:\n  hosts:\n    a: {ansible_ssh_extra_args: 'other-host'}\n",
            "<string>:3:33: ansible_ssh_extra_args: expected ssh flags only, not a destination",
        ),
    ],
)
def test_bad_ssh_variables_are_errors_at_their_place(text: str, message: str) -> None:
    with pytest.raises(InventoryError) as exc:
        Inventory.from_text(text).hosts()
    assert message in str(exc.value)


def test_ansible_variables_we_do_not_use_are_reported(env: Path) -> None:
    path = env / "hosts.yaml"
    path.write_text(
        "all:\n  vars: {ansible_become_method: sudo}\n  hosts:\n"
        "    a: {ansible_connection: local, ansible_password: s3cret, ansible_remote_tmp: /t}\n"
        "    b: {ansible_connection: local, ansible_password: other}\n"
    )
    assert Inventory.from_files([path]).notices == [
        f"{path}:4:54: ansible_password is not used: xnet logs in with keys only "
        "(identity_file, the ssh agent)",
        f"{path}:4:82: ansible_remote_tmp is not used: xnet writes no temporary files on hosts",
    ]
    result = xnet("hosts", "-i", str(path))
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == (
        f"xnet: warning: {path}:4:54: ansible_password is not used: xnet logs in with keys "
        "only (identity_file, the ssh agent)"
    )


def _inventory(env: Path, host: SshdHost, variables: str) -> str:
    path = env / "ssh.yaml"
    path.write_text(
        f"groups: {{s: {{hosts: s1, vars: {{address: {host.address}, port: {host.port}, "
        f"user: {getpass.getuser()}, identity_file: {host.key}, {variables}}}}}}}\n"
    )
    return str(path)


def test_an_unknown_key_is_refused_with_a_hint_and_ssh_options_accept_it(
    env: Path, sshd_host: SshdHost
) -> None:
    known = env / "known_hosts"
    known.write_text("")
    refused = xnet("sh", "-i", _inventory(env, sshd_host, f"known_hosts_file: {known}"), "true")
    assert refused.exit_code == 3
    assert "run again with --accept-new" in refused.stderr  # what a CLI user can do
    accepting = _inventory(
        env,
        sshd_host,
        f"known_hosts_file: {known}, ssh_options: {{StrictHostKeyChecking: accept-new}}",
    )
    result = xnet("sh", "-i", accepting, "echo reached")
    assert result.exit_code == 0, result.output
    assert "reached" in result.stdout.splitlines()  # after the line saying it was recorded
    assert " ssh-ed25519 " in known.read_text()  # recorded (names hashed, as ssh_config says)


def test_ansible_common_args_reach_ssh(env: Path, sshd_host: SshdHost) -> None:
    path = env / "hosts.yaml"
    path.write_text(
        f"all:\n  hosts:\n    s1:\n      ansible_host: {sshd_host.address}\n"
        f"      ansible_port: {sshd_host.port}\n      ansible_user: {getpass.getuser()}\n"
        f"      ansible_ssh_common_args: -i {sshd_host.key} "
        f"-o UserKnownHostsFile={sshd_host.known_hosts}\n"
    )
    result = xnet("sh", "-i", str(path), "echo via ansible args")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == "via ansible args"
