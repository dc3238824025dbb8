"""Parsing execnet's ``ssh=`` values and OpenSSH options, merged with ssh_config text."""

from __future__ import annotations

import getpass
import os

import pytest

from execnet_cli.errors import SpecError
from execnet_cli.transports.ssh.config import expand_includes, load_config_text
from execnet_cli.transports.ssh.settings import (
    CommandLine,
    parse_command_line,
    proxy_command_line,
    resolve,
    settings_for,
    split_destination,
)


def settings(value: str, config: str = ""):
    return resolve(parse_command_line(value), config)


# -- the command line ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "dest, expected",
    [
        ("host", (None, "host", None)),
        ("user@host", ("user", "host", None)),
        ("user@host:2222", ("user", "host", "2222")),
        ("ssh://user@host:2222", ("user", "host", "2222")),
        ("[::1]:2222", (None, "::1", "2222")),
        ("fe80::1", (None, "fe80::1", None)),
        ("a@b@host", ("a@b", "host", None)),
    ],
)
def test_split_destination(dest, expected):
    assert split_destination(dest, dest) == expected


@pytest.mark.parametrize("dest", ["", "@host", "user@", "[::1", "[::1]x"])
def test_bad_destinations(dest):
    with pytest.raises(SpecError):
        parse_command_line(dest or "-p 22")


def test_openssh_flags_become_options():
    line = parse_command_line(
        "-p 2222 -i /k1 -i/k2 -l bob -o StrictHostKeyChecking=accept-new -oConnectTimeout=3 "
        "-F /cfg -J jump -C -4 -qTxa host"
    )
    assert line.host == "host"
    assert line.config_file == "/cfg"
    assert line.options == (
        ("port", "2222"),
        ("identityfile", "/k1"),
        ("identityfile", "/k2"),
        ("user", "bob"),
        ("stricthostkeychecking", "accept-new"),
        ("connecttimeout", "3"),
        ("proxyjump", "jump"),
        ("compression", "yes"),
        ("addressfamily", "inet"),
    )


def test_option_with_space_separator_and_quotes():
    line = parse_command_line("-o 'ProxyCommand nc %h %p' host")
    assert line.options == (("proxycommand", "nc %h %p"),)


@pytest.mark.parametrize(
    "value, named",
    [
        ("-o ForwardAgent=yes host", "ForwardAgent"),
        ("-o PasswordAuthentication=yes host", "PasswordAuthentication"),
        ("-L 8080:localhost:80 host", "-L"),
        ("-N host", "-N"),
        ("-qN host", "-N"),
    ],
)
def test_unsupported_options_are_named(value, named):
    with pytest.raises(SpecError, match=named):
        parse_command_line(value)


def test_other_errors():
    with pytest.raises(SpecError, match="needs an argument"):
        parse_command_line("host -p")
    with pytest.raises(SpecError, match="more than one destination"):
        parse_command_line("host uptime")
    with pytest.raises(SpecError, match="no host"):
        parse_command_line("-p 22")
    with pytest.raises(SpecError, match="not Key=Value"):
        parse_command_line("-o Port host")
    with pytest.raises(SpecError, match="port given twice"):
        parse_command_line("-p 1 host:2")
    with pytest.raises(SpecError, match="user given twice"):
        parse_command_line("-l a b@host")
    with pytest.raises(SpecError):
        parse_command_line("-o 'Port 2")  # shlex: no closing quote


def test_same_value_twice_is_fine():
    assert parse_command_line("-p 2 -o Port=2 host:2").options[0] == ("port", "2")


# -- resolving -------------------------------------------------------------------------------


def test_defaults():
    s = settings("example.org")
    assert (s.host, s.hostname, s.port, s.user) == (
        "example.org",
        "example.org",
        22,
        getpass.getuser(),
    )
    assert s.strict_host_key_checking == "ask"  # OpenSSH's default
    assert s.identity_files == ()
    assert s.jump is None and s.proxy_command is None and not s.compression
    assert s.user_known_hosts_files == (
        os.path.expanduser("~/.ssh/known_hosts"),
        os.path.expanduser("~/.ssh/known_hosts2"),
    ) or s.user_known_hosts_files[0].endswith("known_hosts")
    assert s.describe() == f"{getpass.getuser()}@example.org"
    assert s.known_hosts_name == "example.org"


def test_execnet_style_value():
    s = settings("alice@10.0.0.1:2222")
    assert (s.user, s.hostname, s.port) == ("alice", "10.0.0.1", 2222)
    assert s.describe() == "alice@10.0.0.1:2222"
    assert s.known_hosts_name == "[10.0.0.1]:2222"


CONFIG = """
Host web*
    User deploy
    Port 2200
    IdentityFile ~/.ssh/web_key

Host web9
    HostName 127.0.0.9
    User ignored-because-first-wins

Host *.lab !bad.lab
    ProxyJump gate.lab
    StrictHostKeyChecking accept-new

Host gate.lab
    HostName 127.0.0.50
    User gatekeeper

Host *
    IdentityFile ~/.ssh/common
    ConnectTimeout 4
"""


def test_config_host_patterns_and_first_value_wins():
    s = settings("web9", CONFIG)
    assert (s.hostname, s.user, s.port) == ("127.0.0.9", "deploy", 2200)
    assert s.identity_files == (
        os.path.expanduser("~/.ssh/web_key"),
        os.path.expanduser("~/.ssh/common"),
    )
    assert s.connect_timeout == 4.0


def test_command_line_beats_config():
    s = settings("-p 1234 -l me -i /mine -o ConnectTimeout=1 web1", CONFIG)
    assert (s.port, s.user, s.connect_timeout) == (1234, "me", 1.0)
    assert s.identity_files[0] == "/mine"
    assert s.identity_files[1:] == (
        os.path.expanduser("~/.ssh/web_key"),
        os.path.expanduser("~/.ssh/common"),
    )


def test_config_proxyjump_and_negated_pattern():
    s = settings("db.lab", CONFIG)
    assert s.strict_host_key_checking == "accept-new"
    assert s.jump is not None
    assert (s.jump.host, s.jump.hostname, s.jump.user) == ("gate.lab", "127.0.0.50", "gatekeeper")
    assert s.jump.jump is None  # gate.lab matches *.lab too: a host is not its own jump
    assert settings("bad.lab", CONFIG).jump is None


def test_a_jump_host_on_another_port_of_the_same_address_is_kept():
    """Not the host itself: another server (as many sshd on one address in the lab)."""
    s = settings("-p 2222 -J root@127.0.0.2:2200 127.0.0.2")
    assert s.jump is not None and (s.jump.hostname, s.jump.port) == ("127.0.0.2", 2200)
    assert settings("-p 2200 -J root@127.0.0.2:2200 127.0.0.2").jump is None
    assert settings("-J gate 127.0.0.2").jump is not None
    assert settings("-J gate gate").jump is None


def test_jump_chain_each_hop_through_the_previous():
    s = settings("-J u1@h1:2201,h2 -i /key -o UserKnownHostsFile=/kh target")
    hop2 = s.jump
    assert hop2 is not None and hop2.host == "h2"
    hop1 = hop2.jump
    assert hop1 is not None and (hop1.user, hop1.host, hop1.port) == ("u1", "h1", 2201)
    assert hop1.jump is None
    for hop in (hop1, hop2):  # keys and known hosts are inherited from the command line
        assert hop.identity_files == ("/key",)
        assert hop.user_known_hosts_files == ("/kh",)


def test_jump_loop_is_an_error():
    assert settings("a", "Host *\n  ProxyJump a\n").jump is None
    with pytest.raises(SpecError, match="ProxyJump chain"):
        settings("a", "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n")


def test_proxy_command_tokens():
    s = settings("-p 2022 -l me box", "Host box\n  ProxyCommand nc -X connect %h %p %r\n")
    assert s.proxy_command == "nc -X connect %h %p %r"  # expanded when it runs
    assert proxy_command_line(s) == "nc -X connect box 2022 me"
    assert settings("box", "Host box\n  ProxyCommand none\n").proxy_command is None


def test_proxy_jump_and_command_together():
    with pytest.raises(SpecError, match="both ProxyJump and ProxyCommand"):
        settings("box", "Host box\n  ProxyCommand nc %h %p\n  ProxyJump gate\n")
    config = "Host box\n  ProxyCommand nc %h %p\n"
    s = settings("-J gate box", config)  # the command line wins
    assert s.proxy_command is None and s.jump is not None and s.jump.host == "gate"
    s = settings("-o 'ProxyCommand nc %h %p' box", "Host box\n  ProxyJump gate\n")
    assert proxy_command_line(s) == "nc box 22" and s.jump is None


@pytest.mark.parametrize(
    "value, policy",
    [("yes", "yes"), ("ask", "ask"), ("accept-new", "accept-new"), ("no", "no"), ("off", "no")],
)
def test_strict_host_key_checking_values(value, policy):
    s = settings(f"-o StrictHostKeyChecking={value} h")
    assert s.strict_host_key_checking == policy


@pytest.mark.parametrize(
    "value, message",
    [
        ("-o StrictHostKeyChecking=maybe h", "StrictHostKeyChecking"),
        ("-p 0 h", "out of range"),
        ("-p x h", "not a number"),
        ("-o ConnectTimeout=soon h", "not a number of seconds"),
        ("-o Compression=perhaps h", "not yes or no"),
        ("-o AddressFamily=ipx h", "AddressFamily"),
    ],
)
def test_bad_values(value, message):
    with pytest.raises(SpecError, match=message):
        settings(value)


def test_known_hosts_files_and_none():
    s = settings("-o 'UserKnownHostsFile=/a /b' -o GlobalKnownHostsFile=none h")
    assert s.user_known_hosts_files == ("/a", "/b")
    assert s.global_known_hosts_files == ()


def test_config_ignores_keys_we_do_not_implement():
    s = settings("h", "Host *\n  ForwardAgent yes\n  SendEnv LANG\n  ControlMaster auto\n")
    assert s.hostname == "h"


def test_unparsable_config_is_a_spec_error():
    with pytest.raises(SpecError):
        settings("h", "Host h\n=garbage\n")


# -- files --------------------------------------------------------------------------------------


def test_settings_for_reads_the_config_file(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text("Host alias\n  HostName 127.0.0.7\n  Port 2207\n")
    s = settings_for("alias", str(cfg))
    assert (s.hostname, s.port) == ("127.0.0.7", 2207)
    s = settings_for(f"-F {cfg} alias")
    assert s.hostname == "127.0.0.7"
    with pytest.raises(SpecError, match="differ"):
        settings_for(f"-F {cfg} alias", str(tmp_path / "other"))
    with pytest.raises(SpecError, match="missing"):
        settings_for("alias", str(tmp_path / "missing"))
    assert settings_for("-F none alias").hostname == "alias"


def test_includes_are_expanded(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text("Host inc\n  Port 2300\n")
    (tmp_path / "main").write_text("Include conf.d/*.conf\nHost other\n  Port 1\n")
    text = load_config_text(str(tmp_path / "main"))
    assert "Port 2300" in text
    assert settings("inc", text).port == 2300
    assert expand_includes("Include /nonexistent/*", str(tmp_path), "x") == ""


def test_default_config_files_are_user_then_system(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Host h\n  Port 2400\n")
    text = load_config_text(None)
    assert settings("h", text).port == 2400


def test_command_line_is_a_value_type():
    line = parse_command_line("-p 1 h")
    assert line == CommandLine("h", (("port", "1"),))
    assert hash(settings("-p 1 h")) == hash(settings("-p 1 h"))


def test_connect_failure_names_each_address_once() -> None:
    from execnet_cli.transports.ssh.connect import connect_failure

    refused = [("127.0.0.2", "Connection refused")]
    assert connect_failure("127.0.0.2", 2222, "fleet@127.0.0.2:2222", refused) == (
        "cannot connect to port 2222: Connection refused"
    )
    # an alias whose HostName differs: the real host is named, and every address tried
    tried = [("127.0.0.2", "Connection refused"), ("::1", "timed out after 2 s")]
    assert connect_failure("db.internal", 22, "db", tried) == (
        "cannot connect to db.internal port 22: 127.0.0.2: Connection refused; "
        "::1: timed out after 2 s"
    )


def test_settings_are_a_frozen_value_as_the_dataclass_was() -> None:
    """Equal and hashing by fields, a dataclass-style repr, no assignment, ``replace``
    copies with changes, pickle and copy round-trip (a slotted class since it cost ~8 M
    instructions of every start as a dataclass)."""
    import copy
    import pickle

    from execnet_cli.transports.ssh.settings import SSHSettings

    hop = SSHSettings("jump", "10.0.0.1", 22, "me")
    one = SSHSettings("web", "web.example", 2222, "me", ("~/.ssh/k",), jump=hop)
    same = SSHSettings(
        host="web", hostname="web.example", port=2222, user="me", identity_files=("~/.ssh/k",)
    ).replace(jump=hop)
    assert one == same and hash(one) == hash(same) and one != hop and one != "web"
    assert repr(hop).startswith("SSHSettings(host='jump', hostname='10.0.0.1', port=22, ")
    assert repr(hop).endswith("address_family='any', server_alive_interval=0.0)")
    assert one.replace(port=22).port == 22 and one.port == 2222
    assert pickle.loads(pickle.dumps(one)) == one == copy.deepcopy(one)
    with pytest.raises(AttributeError):
        one.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        one.replace(colour="red")
