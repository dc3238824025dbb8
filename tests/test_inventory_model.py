"""``Inventory`` and ``Host``: groups, precedence, resolution, whole-inventory checks, specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inventory_helpers import (
    LAB,
    PRECEDENCE,
    assert_error_at,
    load,
    reader_fixture,  # noqa: F401
)

import execnet_cli.inventory as inventory
from execnet_cli.inventory import Host, HostSet, PatternError


def test_the_package_exports_its_public_api() -> None:
    """The other layers, and the library examples in docs/, import from the package."""
    public = {"Inventory", "Host", "HostSet", "load_inventory", "InventoryError", "PatternError"}
    assert public <= set(inventory.__all__)
    assert all(hasattr(inventory, name) for name in inventory.__all__)


def test_our_format_groups_ranges_children(tmp_path: Path) -> None:
    inv = load(tmp_path, LAB)
    assert str(inv.all) == "bastion,bastion-py,build,db[01-02],web[01-03]"
    assert str(inv.groups["prod"]) == "db[01-02],web[01-02]"
    assert str(inv.groups["ungrouped"]) == "build"
    assert inv.select("web&prod") == HostSet("web[01-02]")
    assert inv.children("all") == ["bastion", "prod", "web", "ungrouped"]
    assert inv.children("prod") == ["db"]
    assert inv.direct_hosts("prod") == HostSet("web[01-02]")
    assert inv.sources == (str(tmp_path / "inv.yaml"),)


def test_resolved_host(tmp_path: Path) -> None:
    inv = load(tmp_path, LAB)
    db02 = inv.host("db02")
    fields = {k: v for k, v in db02.as_dict().items() if k not in ("spec", "vars")}
    own = {"groups": db02.groups, "env": db02.env, "ssh_options": db02.ssh_options}
    same = Host(**{**fields, **own, "vars": db02.vars})
    assert db02 == same and hash(db02) == hash(same) and repr(db02) == repr(same)
    assert db02.groups == ("prod", "db")  # the order their variables apply
    assert (db02.transport, db02.address, db02.port, db02.user) == ("ssh", "db02", 2222, "deploy")
    assert db02.python == "python3" and db02.proxy_jump == "gw" and db02.via is None
    assert dict(db02.env) == {"LANG": "C", "STAGE": "prod"}
    assert inv.host("bastion").address == "203.0.113.10"
    assert inv.host("bastion-py").via == "bastion"
    assert inv.host("build").groups == ("ungrouped",)
    with pytest.raises(KeyError):
        inv.host("nope")


def test_settings_a_transport_does_not_use_are_dropped(tmp_path: Path) -> None:
    build = load(tmp_path, LAB).host("build")
    assert (build.transport, build.user, build.port, build.python) == ("popen", None, None, None)
    assert build.vars["user"] == "deploy"  # still visible as raw data


def test_pattern_errors_are_pattern_errors(tmp_path: Path) -> None:
    inv = load(tmp_path, LAB)
    with pytest.raises(PatternError, match="close names: prod"):
        inv.select("web&prdo")
    with pytest.raises(PatternError, match="selects no hosts"):
        inv.select("build&web")


# ----------------------------------------------------------------------------- precedence


def test_precedence_all_parent_child_host(tmp_path: Path) -> None:
    inv = load(tmp_path, PRECEDENCE)
    h1, h2 = inv.host("h1"), inv.host("h2")
    assert h1.user == "child" and h2.user == "host"
    assert h1.chdir == "/parent" and h2.python == "p-all"


def test_precedence_same_depth_by_name_later_wins(tmp_path: Path) -> None:
    h1 = load(tmp_path, PRECEDENCE).host("h1")
    # alpha, beta and parent are all at depth 1; child is at depth 2.
    assert h1.groups == ("alpha", "beta", "parent", "child")
    assert h1.python == "p-beta"  # beta sorts after alpha
    assert h1.port == 1  # parent sorts after alpha


def test_priority_reorders_groups_of_the_same_depth(tmp_path: Path) -> None:
    text = PRECEDENCE.replace(
        "    vars: {python: p-alpha, port: 2}",
        "    priority: 5\n    vars: {python: p-alpha, port: 2}",
    )
    h1 = load(tmp_path, text).host("h1")
    assert h1.groups == ("beta", "parent", "alpha", "child")
    assert h1.python == "p-alpha" and h1.port == 2


def test_depth_is_the_longest_path_from_all(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """\
        groups:
          a: {children: [b, z]}
          b: {children: [z]}
          z: {hosts: h, vars: {user: z}}
          y: {hosts: h, vars: {user: y}}
        """,
    )
    # z is both a's child (depth 2) and b's child (depth 3): it counts as depth 3.
    assert inv.host("h").groups == ("a", "y", "b", "z")
    assert inv.host("h").user == "z"


def test_env_merges_and_null_resets(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """\
        vars: {env: {A: "1", B: "2"}, port: 2200}
        groups:
          g: {hosts: "h[1-3]", vars: {env: {B: "3", C: 4}}}
        hosts:
          h2: {env: null, port: null}
          h3: {env: {D: yes}}
        """,
    )
    assert dict(inv.host("h1").env) == {"A": "1", "B": "3", "C": "4"}
    assert dict(inv.host("h2").env) == {} and inv.host("h2").port is None
    assert inv.host("h1").port == 2200
    assert dict(inv.host("h3").env) == {"A": "1", "B": "3", "C": "4", "D": "1"}


def test_a_host_listed_twice_takes_the_later_vars(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts:\n  'web[1-3]': {port: 1}\n  web2: {port: 2, user: u}\n")
    assert [inv.host(h).port for h in ("web1", "web2", "web3")] == [1, 2, 1]


# ----------------------------------------------------------------------------- checks


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        (
            "groups:\n  a: {children: [b]}\n  b: {children: [c]}\n  c: {children: [a], hosts: x}\n",
            4,
            18,
            "cycle in children: a -> b -> c -> a",
        ),
        ("groups:\n  a: {children: [a]}\n", 2, 18, "cycle in children: a -> a"),
        (
            "groups:\n  web: {hosts: w1}\n  prod: {children: [wbe]}\n",
            3,
            21,
            "unknown child group 'wbe' (did you mean 'web'?)",
        ),
        ("groups:\n  g: {children: [all]}\n", 2, 18, "'all' cannot be a child group"),
        (
            "hosts:\n  a: {via: bastoin}\n  bastion:\n",
            2,
            12,
            "via names unknown host 'bastoin' (did you mean 'bastion'?)",
        ),
        ("hosts:\n  a: {via: b}\n  b: {via: a}\n", 2, 12, "via loop: a -> b -> a"),
        ("hosts:\n  a: {via: a}\n", 2, 12, "via loop: a -> a"),
        ("hosts:\n  a: {transport: socket}\n", 2, 18, "transport socket needs a port"),
        (
            "hosts:\n  a: {via: b, transport: socket, port: 1}\n  b:\n",
            2,
            12,
            "via cannot be combined with transport socket",
        ),
    ],
)
def test_whole_inventory_errors_name_file_line_column(
    tmp_path: Path, text: str, line: int, column: int, words: str, reader: str
) -> None:
    assert_error_at(tmp_path, text, line, column, words)


def test_unsupported_ansible_connection_fails_only_when_selected(tmp_path: Path) -> None:
    text = "all:\n  hosts:\n    win1: {ansible_connection: winrm}\n    lin1:\n"
    inv = load(tmp_path, text)
    assert inv.host("lin1").transport == "ssh"
    with pytest.raises(inventory.InventoryError) as info:
        inv.hosts("win1")
    assert "ansible_connection 'winrm' is not supported" in str(info.value)
    assert (info.value.line, info.value.column) == (3, 32)


def test_ssh_host_via_another_host(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts:\n  a: {via: b, address: 10.0.0.9}\n  b: {address: 10.0.0.2}\n")
    assert inv.host("a").via == "b" and inv.host("a").spec().endswith("//via=b")


# ----------------------------------------------------------------------------- specs


@pytest.mark.parametrize(
    ("host", "spec"),
    [
        (Host("w1", transport="popen"), "popen//id=w1"),
        (
            Host("w1", transport="popen", python="/py", chdir="/srv", env={"A": "1", "B": "x y"}),
            "popen//id=w1//python=/py//chdir=/srv//env:A=1//env:B=x y",
        ),
        (Host("w1", python="python3"), "ssh=w1//id=w1//python=python3"),
        (
            Host(
                "w1",
                address="10.0.0.1",
                port=2222,
                user="ops",
                identity_file="~/.ssh/k",
                proxy_jump="jump@gw:22",
                connect_timeout=2.5,
                python="python3",
                via="bastion",
                sudo=True,
            ),
            "ssh=-p 2222 -i ~/.ssh/k -l ops -J jump@gw:22 -o ConnectTimeout=3 10.0.0.1"
            "//id=w1//python=python3//via=bastion//sudo=true",
        ),
        (
            Host("s1", transport="socket", address="10.0.0.2", port=8888),
            "socket=10.0.0.2:8888//id=s1",
        ),
        (Host("s6", transport="socket", address="::1", port=8888), "socket=[::1]:8888//id=s6"),
        (
            Host("s2", transport="socket", address="h", port=1, connect_timeout=2.5),
            "socket=h:1//id=s2//connect_timeout=2.5",
        ),
        (Host("p", transport="popen", connect_timeout=5), "popen//id=p//connect_timeout=5"),
        (Host("w1", transport="popen", sudo="postgres"), "popen//id=w1//sudo=postgres"),
    ],
)
def test_spec(host: Host, spec: str) -> None:
    assert host.spec() == spec


def test_spec_from_inventory(tmp_path: Path) -> None:
    inv = load(tmp_path, LAB)
    assert inv.host("db02").spec() == (
        "ssh=-p 2222 -l deploy -J gw db02//id=db02//python=python3//env:LANG=C//env:STAGE=prod"
    )
    assert inv.host("bastion-py").spec() == "popen//id=bastion-py//env:LANG=C//via=bastion"
    assert inv.host("build").spec() == "popen//id=build//env:LANG=C"


def test_as_dict_is_json(tmp_path: Path) -> None:
    data = json.loads(json.dumps(load(tmp_path, LAB).host("db02").as_dict()))
    assert data["name"] == "db02" and data["groups"] == ["prod", "db"]
    assert data["port"] == 2222 and data["env"] == {"LANG": "C", "STAGE": "prod"}
    assert data["spec"].startswith("ssh=") and data["vars"]["port"] == 2222


def test_hosts_are_values() -> None:
    assert Host("a") == Host("a", address="a") and Host("a").address == "a"
    with pytest.raises(AttributeError):
        Host("a").port = 1  # type: ignore[misc]
