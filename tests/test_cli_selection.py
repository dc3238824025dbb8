"""Hosts without an inventory: ``--hosts -`` (stdin), ``@FILE``, ad-hoc ``[user@]host[:port]``."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from inventory_helpers import LOCAL
from sshd_fixtures import SshdHost

from execnet_cli.cli import main
from execnet_cli.cli.selection import looks_adhoc, read_names, resolve_selection
from execnet_cli.inventory import Inventory, PatternError

INVENTORY = Inventory.from_text(LOCAL)


def xnet(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


@pytest.fixture
def inv(env: Path) -> str:
    path = env / "cluster.yaml"
    path.write_text(LOCAL)
    return str(path)


def test_names_are_read_apart_by_lines_spaces_and_commas_without_comments() -> None:
    text = "local1  local3 # the others\n\n# all of it a comment\nweb[01,03],db\n"
    assert read_names(text) == ["local1", "local3", "web[01,03]", "db"]


@pytest.mark.parametrize(
    "term", ["root@db", "db:2222", "db.example.com", "10.0.0.5", "[::1]", "ops@[::1]:22"]
)
def test_addresses_look_adhoc(term: str) -> None:
    assert looks_adhoc(term)


@pytest.mark.parametrize("term", ["db", "web[01-03]", "web*", "~web.*", "local1"])
def test_names_and_patterns_do_not(term: str) -> None:
    assert not looks_adhoc(term)


def test_adhoc_hosts_go_beside_inventory_names() -> None:
    hosts = resolve_selection("local[1-2],ops@db.example.com:2200,10.0.0.5", INVENTORY)
    assert [h.name for h in hosts] == ["local1", "local2", "ops@db.example.com:2200", "10.0.0.5"]
    assert hosts[2].spec() == "ssh=-p 2200 -l ops db.example.com//id=ops@db.example.com:2200"


def test_an_exclusion_beside_adhoc_hosts_still_excludes() -> None:
    """Each term was looked up alone: a lone `!local2` selected every other host, added."""
    hosts = resolve_selection("local,!local2,ops@db.example.com", INVENTORY)
    assert [h.name for h in hosts] == ["local1", "local3", "ops@db.example.com"]
    hosts = resolve_selection("local&local[1-2],10.0.0.5", INVENTORY)
    assert [h.name for h in hosts] == ["local1", "local2", "10.0.0.5"]


def test_adhoc_ranges_expand_and_one_address_can_be_two_hosts() -> None:
    """Two users or ports on one address stay two hosts (they were one, the last winning),
    and the folded form a report prints selects the same hosts again."""
    hosts = resolve_selection("ops@10.0.0.[1-2],db:22,db:2222,[::1]:22", INVENTORY)
    names = ["ops@10.0.0.1", "ops@10.0.0.2", "db:22", "db:2222", "[::1]:22"]
    assert [h.name for h in hosts] == names
    assert [(h.address, h.port, h.user) for h in hosts[1:4]] == [
        ("10.0.0.2", None, "ops"),
        ("db", 22, None),
        ("db", 2222, None),
    ]
    folded = resolve_selection("ops@10.0.0.[1-2],db:[22,2222]", INVENTORY)
    assert [h.name for h in folded] == names[:4]


def test_a_rerun_reaches_the_same_adhoc_user_and_port(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(env / "state"))
    monkeypatch.setenv("XNET_INVENTORY", str(env / "none.yaml"))
    (env / "none.yaml").write_text(LOCAL)
    # nothing listens on port 9 of 127.0.0.2: both hosts are unreachable, quickly
    first = xnet("sh", "-H", "local1,ops@127.0.0.2:9,127.0.0.2:9", "true")
    assert first.exit_code == 3, first.output
    assert "to rerun: -H @unreachable = '127.0.0.2:9,ops@127.0.0.2:9'" in first.stderr
    hosts = resolve_selection("@unreachable", INVENTORY)
    assert [(h.name, h.user, h.port) for h in hosts] == [
        ("ops@127.0.0.2:9", "ops", 9),
        ("127.0.0.2:9", None, 9),
    ]


def test_a_bare_unknown_word_stays_an_error_that_says_how_to_go_ad_hoc() -> None:
    with pytest.raises(PatternError) as exc:
        resolve_selection("local1,lcoal2", INVENTORY)
    assert "unknown host or group 'lcoal2'" in str(exc.value)
    assert "user@NAME, NAME:PORT" in str(exc.value)


def test_hosts_from_stdin(inv: str) -> None:
    result = xnet("run", "-i", inv, "-H", "-", "print('hi')", input="local1\nlocal3 # x\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("local[1,3] (2) ---")


def test_hosts_from_a_file_and_a_file_named_like_a_run_state(inv: str, env: Path) -> None:
    (env / "failed").write_text("local2\n")
    result = xnet("sh", "-i", inv, "-H", "@./failed", "echo $XNET_TEST_BOOM")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "local2 (1) " + "-" * (80 - len("local2 (1) ")),
        "1",
    ]
    listed = xnet("hosts", "-i", inv, "@./failed")  # @failed: the last run's failed set
    assert listed.exit_code == 0, listed.output
    assert "local2" in listed.stdout and "local1" not in listed.stdout


def test_unreadable_or_empty_host_lists(inv: str, env: Path) -> None:
    missing = xnet("run", "-i", inv, "-H", "@nonexistent.txt", "pass")
    assert missing.exit_code == 2
    assert "cannot read host names from nonexistent.txt: No such file" in missing.stderr
    empty = xnet("run", "-i", inv, "-H", "-", "pass", input="# nobody\n")
    assert empty.exit_code == 5
    assert "no host names in standard input" in empty.stderr


def test_stdin_cannot_be_both_the_code_and_the_hosts(inv: str) -> None:
    result = xnet("run", "-i", inv, "-H", "-", "-", input="local1\n")
    assert result.exit_code == 2
    assert "use --hosts @FILE" in result.stderr


def test_an_adhoc_ssh_host_without_an_inventory(
    env: Path, sshd_host: SshdHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = env / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host {sshd_host.address}\n  IdentityFile {sshd_host.key}\n"
        f"  UserKnownHostsFile {sshd_host.known_hosts}\n"
    )
    monkeypatch.setenv("HOME", str(home))
    target = f"{getpass.getuser()}@{sshd_host.address}:{sshd_host.port}"
    result = xnet("sh", "-H", f"localhost,{target}", "echo reached")
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0]
    assert header.startswith(f"localhost,{target} (2) ---")
    assert result.stdout.splitlines()[1:] == ["reached"]


def test_a_file_named_like_a_typo_of_a_run_state_is_read(inv: str, env: Path) -> None:
    missing = xnet("hosts", "-i", inv, "@faild")
    assert missing.exit_code == 2 and "did you mean '@failed'?" in missing.stderr
    (env / "faild").write_text("local3\n")
    found = xnet("hosts", "-i", inv, "@faild")
    assert found.exit_code == 0, found.output
    assert "local3" in found.stdout
