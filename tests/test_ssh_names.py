"""Host and user names that could reach a shell through ProxyCommand (issue #16, defect 2).

The attack tests run the real path: an ssh config whose ProxyCommand substitutes the names,
a gateway opened from a spec or an inventory, and a sentinel file the injected command would
create. No sshd is needed: the ProxyCommand never reaches a server.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import execnet_cli
from execnet_cli.errors import ConnectFailed, SpecError
from execnet_cli.fleet import direct, relays
from execnet_cli.fleet.jobs import shell_job
from execnet_cli.inventory import Inventory, InventoryError
from execnet_cli.transports.ssh.names import (
    expand_proxy_command,
    host_name_error,
    jump_error,
    user_name_error,
)
from execnet_cli.transports.ssh.settings import (
    SSHSettings,
    parse_command_line,
    proxy_command_line,
    resolve,
)

PROXY = "Host *\n  ProxyCommand /bin/true %h %p %r\n"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME whose ~/.ssh/config runs a harmless ProxyCommand with every name in it."""
    path = tmp_path / "home"
    (path / ".ssh").mkdir(parents=True)
    (path / ".ssh" / "config").write_text(PROXY)
    monkeypatch.setenv("HOME", str(path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return path


def open_and_close(spec: str) -> None:
    gateway = execnet_cli.makegateway(spec)
    gateway.exit()  # not reached: no server behind /bin/true


# -- the rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "host-1.example",
        "host_x",
        "127.0.0.1",
        "::1",
        "fe80::1%eth0",
        "2001:db8::17",
        "web01",
        "café.example",
        "*.lab",
        "~root",
    ],
)
def test_legal_host_names(name):
    assert host_name_error(name) is None


@pytest.mark.parametrize(
    "name, shown",
    [
        ("a$(touch /tmp/x)b", "'$'"),
        ("a`id`", "'`'"),
        ("a'b", '"\'"'),
        ('a"b', "'\"'"),
        ("a\\b", "'\\\\'"),
        ("a;b", "';'"),
        ("a&b", "'&'"),
        ("a|b", "'|'"),
        ("a<b", "'<'"),
        ("a>b", "'>'"),
        ("a(b", "'('"),
        ("a)b", "')'"),
        ("a{b", "'{'"),
        ("a}b", "'}'"),
        ("a,b", "','"),
        ("a b", "whitespace (' ')"),
        ("a\tb", "a control character ('\\t')"),
        ("a\nb", "a control character ('\\n')"),
        ("a\x07b", "a control character ('\\x07')"),
        ("-oProxyCommand=x", "starts with '-'"),
    ],
)
def test_illegal_host_names(name, shown):
    problem = host_name_error(name)
    assert problem is not None and shown in problem, problem


@pytest.mark.parametrize("name", ["user_x", "root", "a@b", "DOMAIN\\me", "HOST$", "a b", "$HOME"])
def test_legal_user_names(name):
    assert user_name_error(name) is None


@pytest.mark.parametrize(
    "name, shown",
    [
        ("u$(id)", "'('"),
        ("u`id`", "'`'"),
        ("u;id", "';'"),
        ("u|id", "'|'"),
        ("u'x", '"\'"'),
        ("-lroot", "starts with '-'"),
        ("a -oX", "whitespace before '-'"),
        ("trailing\\", "ends with '\\'"),
        ("a\x00b", "control character"),
    ],
)
def test_illegal_user_names(name, shown):
    problem = user_name_error(name)
    assert problem is not None and shown in problem, problem


def test_jump_hops():
    assert jump_error("gate,me@[::1]:2222,ssh://u@h:22") is None
    assert "'$'" in (jump_error("gate,g$(id)") or "")
    assert "'('" in (jump_error("u$(id)@gate") or "")


# -- spec parsing: the error names the spec and the character ---------------------------------


@pytest.mark.parametrize(
    "value, shown",
    [
        ("'a$(touch /tmp/x)b'", "host name 'a$(touch /tmp/x)b' contains '$'"),
        ("-l 'u;id' box", "user name 'u;id' contains ';'"),
        ("'u|x@box'", "user name 'u|x' contains '|'"),
        ("-J 'g&x' box", "ProxyJump hop 'g&x': host name 'g&x' contains '&'"),
        ("-o 'ProxyJump u`x`@g' box", "user name 'u`x`' contains '`'"),
        ("-o 'HostName a>b' box", "HostName: host name 'a>b' contains '>'"),
        ("-o 'User (x)' box", "contains '('"),
    ],
)
def test_spec_names_are_checked_before_anything(value, shown):
    with pytest.raises(SpecError) as info:
        parse_command_line(value)
    assert str(info.value).startswith(f"ssh={value!r}: ")
    assert shown in str(info.value)


def test_legal_specs_still_parse():
    for value in [
        "user_x@host-1.example",
        "[::1]:2222",
        "fe80::1",
        "-l 'DOMAIN\\me' -J gate,u@[::1]:22 host_x",
    ]:
        assert resolve(parse_command_line(value), "").hostname


def test_config_values_are_checked_after_lookup():
    config = "Host box\n  HostName evil;x\n"
    with pytest.raises(SpecError, match=r"ssh host 'box': HostName: host name 'evil;x'"):
        resolve(parse_command_line("box"), config)
    config = "Host box\n  ProxyJump g$(x)\n"
    with pytest.raises(SpecError, match=r"ProxyJump hop 'g\$\(x\)'"):
        resolve(parse_command_line("box"), config)


# -- ProxyCommand expansion ------------------------------------------------------------------


def test_proxy_command_tokens_are_quoted():
    expand = expand_proxy_command
    kw = dict(host="alias", hostname="~root", port=2222, user="$HOME", where="w")
    assert expand("nc %h %p", **kw) == "nc '~root' 2222"
    assert expand("x %n %r %%h 100%%", **kw) == "x alias '$HOME' %h 100%"
    assert expand("nc host-1.example %p", **kw) == "nc host-1.example 2222"
    with pytest.raises(SpecError, match="unknown token %d"):
        expand("nc %d", **kw)
    with pytest.raises(SpecError, match="lone '%' at the end"):
        expand("nc %", **kw)


def test_proxy_command_refuses_bad_names_even_in_settings_built_by_hand():
    settings = SSHSettings(
        host="box", hostname="a$(id)", port=22, user="me", proxy_command="nc %h %p"
    )
    with pytest.raises(SpecError, match=r"host name 'a\$\(id\)' contains '\$'"):
        proxy_command_line(settings)


def test_unknown_proxy_command_token_is_a_spec_error():
    with pytest.raises(SpecError, match="unknown token %C"):
        resolve(parse_command_line("box"), "Host box\n  ProxyCommand nc %C\n")


# -- the real ProxyCommand path ----------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    [
        "'a$(touch {s})b'",  # the destination
        "-l 'u$(touch {s})' box",  # the user, %r
        "-J 'g$(touch {s})' box",  # a jump host runs the ProxyCommand too
        "-o 'HostName h$(touch {s})' box",  # %h
    ],
)
def test_spec_cannot_inject_through_proxy_command(tmp_path, home, form):
    sentinel = tmp_path / "injected"
    config = tmp_path / "config"
    config.write_text(PROXY)
    value = f"-F {config} " + form.format(s=sentinel)
    with pytest.raises(Exception) as info:
        open_and_close(f"ssh={value}")
    assert not sentinel.exists(), "the ProxyCommand ran the injected command"
    assert info.type is SpecError and str(info.value).startswith(f"ssh={value!r}: ")


@pytest.mark.parametrize(
    "variable, shown",
    [
        ("address", "address: host name 'a$(touch${{IFS}}{s})b' contains '$'"),
        ("user", "user: user name 'a$(touch${{IFS}}{s})b' contains '('"),
        ("ansible_host", "ansible_host: host name"),
        ("proxy_jump", "proxy_jump: ProxyJump hop"),
    ],
)
def test_inventory_cannot_inject_through_proxy_command(tmp_path, home, variable, shown):
    sentinel = tmp_path / "injected"
    inventory = tmp_path / "inv.yaml"
    value = f"a$(touch${{IFS}}{sentinel})b"
    if variable.startswith("ansible_"):
        text = f"all:\n  hosts:\n    web:\n      {variable}: '{value}'\n"
    else:
        text = f"hosts:\n  web:\n    {variable}: '{value}'\n"
    inventory.write_text(text)
    line = text.count("\n", 0, text.index(variable)) + 1
    with pytest.raises(Exception) as info:
        open_and_close(Inventory.from_files([inventory]).host("web").spec())
    assert not sentinel.exists(), "the ProxyCommand ran the injected command"
    assert info.type is InventoryError and str(info.value).startswith(f"{inventory}:{line}:")
    assert shown.format(s=sentinel) in str(info.value)


def test_inventory_host_name_as_address_cannot_inject(tmp_path, home, monkeypatch):
    """A host name is also the address; names may hold '|', which the spec check refuses."""
    monkeypatch.chdir(tmp_path)  # `/bin/true web|touch 22 ...` would create ./22
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("hosts:\n  web|touch:\n")
    host = Inventory.from_files([inventory]).host("web|touch")
    with pytest.raises(Exception) as info:
        open_and_close(host.spec())
    assert not (tmp_path / "22").exists(), "the ProxyCommand ran the injected command"
    assert info.type is SpecError and "host name 'web|touch' contains '|'" in str(info.value)


def test_names_reach_proxy_command_as_literal_words(tmp_path, home):
    """Legal names that mean something to sh (``~root``, ``$HOME``) are quoted, not expanded."""
    out = tmp_path / "out"
    config = tmp_path / "config"
    config.write_text(f"Host *\n  ProxyCommand printf '%%s|%%s|%%s\\n' %h %n %r > {out}\n")
    with pytest.raises(ConnectFailed):
        open_and_close(f"ssh=-F {config} -l '$HOME' '~root'")
    assert out.read_text() == "~root|~root|$HOME\n"


def test_match_exec_gets_quoted_names(tmp_path, home):
    """paramiko runs ``Match exec`` through invoke (which reads stdin: a process of its own)."""
    out = tmp_path / "out"
    config = f'Match exec "echo %h %r > {out}"\n  Port 2222\n'
    script = (
        "from execnet_cli.transports.ssh.settings import parse_command_line, resolve\n"
        f"s = resolve(parse_command_line(\"-l '$HOME' '~root'\"), {config!r})\n"
        "print(s.port)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    assert done.stdout == "2222\n", done.stderr
    assert out.read_text() == "~root $HOME\n"


@pytest.mark.parametrize("path", ["direct sh", "relay"])
def test_sh_paths_check_names_as_gateways_do(tmp_path, home, path):
    """``xnet sh`` straight on the session channel, and a relay's OpenSSH command line,
    get the same checks: a bad name from the inventory or from the ssh config's HostName
    is refused before a ProxyCommand could run it (a relay runs none: it refuses those)."""
    sentinel = tmp_path / "injected"
    config = home / ".ssh" / "config"
    config.write_text(f"Host box\n  HostName 'h$(touch {sentinel})'\n" + PROXY)
    inventory = Inventory.from_text(
        "hosts:\n  box: {transport: ssh}\n  web|touch: {transport: ssh}\n"
    )
    for name, shown in (("box", "HostName: host name"), ("web|touch", "host name 'web|touch'")):
        host = inventory.host(name)
        assert direct.applies(shell_job("true"), host)
        with pytest.raises(SpecError, match=shown.replace("|", r"\|")):
            if path == "direct sh":
                direct.start(host, shell_job("true")).close()
            else:
                relays.host_entry(host)
    assert not sentinel.exists(), "the ProxyCommand ran the injected command"
