"""Inventories: both formats, variable precedence, checks with positions, discovery, specs."""

from __future__ import annotations

import json
import os
import random
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from execnet_cli._remote.errors import XnetError
from execnet_cli.inventory import yaml_reader as inventory_yaml
from execnet_cli.inventory.hostpattern import HostSet, PatternError
from execnet_cli.inventory.model import (
    DEFAULT_INVENTORY,
    Host,
    Inventory,
    InventoryError,
    find_inventories,
    load_inventory,
)
from execnet_cli.inventory.yaml_reader import Definitions, read_yaml

EXAMPLES = Path(__file__).resolve().parent.parent / "inventories"


def write(tmp_path: Path, text: str, name: str = "inv.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str) -> Inventory:
    return Inventory.from_files([write(tmp_path, text)])


def error(tmp_path: Path, text: str, pattern: str = "all") -> InventoryError:
    with pytest.raises(InventoryError) as info:
        load(tmp_path, text).hosts(pattern)
    return info.value


@pytest.fixture(params=["fast", "compose"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the fast reader (where it takes the text), then with compose only."""
    if request.param == "compose":
        monkeypatch.setattr(inventory_yaml, "_fast_compose", lambda text: None)
    return str(request.param)


# ----------------------------------------------------------------------------- our format


LAB = """\
vars:
  user: deploy
  env: {LANG: C}
groups:
  web:
    hosts: web[01-03]
    vars: {port: 2201}
  db:
    hosts:
      db01:
      db02: {port: 2222}
  prod:
    hosts: web[01-02]
    children: [db]
    vars: {proxy_jump: gw, env: {STAGE: prod}}
  bastion:
    hosts:
      bastion: {address: 203.0.113.10}
      bastion-py: {transport: popen, via: bastion}
hosts:
  build: {transport: popen}
"""


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
    same = Host(**{**fields, "groups": db02.groups, "env": db02.env, "vars": db02.vars})
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


PRECEDENCE = """\
vars: {user: all, chdir: /all, python: p-all}
groups:
  parent:
    children: [child]
    vars: {user: parent, chdir: /parent, port: 1}
  child:
    hosts: h1, h2
    vars: {user: child}
  alpha:
    hosts: h1
    vars: {python: p-alpha, port: 2}
  beta:
    hosts: h1
    vars: {python: p-beta}
hosts:
  h2: {user: host}
"""


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


def test_hostname_alias_and_user_variables(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts:\n  a: {hostname: 10.0.0.5, x_rack: 7, x_tags: [a, b]}\n")
    host = inv.host("a")
    assert host.address == "10.0.0.5"
    assert host.vars["x_rack"] == 7 and host.vars["x_tags"] == ["a", "b"]


def test_a_host_listed_twice_takes_the_later_vars(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts:\n  'web[1-3]': {port: 1}\n  web2: {port: 2, user: u}\n")
    assert [inv.host(h).port for h in ("web1", "web2", "web3")] == [1, 2, 1]


def test_several_files_merge_in_order(tmp_path: Path) -> None:
    first = write(tmp_path, "vars: {user: a}\ngroups:\n  web: {hosts: web1}\n", "1.yaml")
    second = write(tmp_path, "vars: {user: b}\ngroups:\n  web: {hosts: web2}\n", "2.yaml")
    inv = Inventory.from_files([first, second])
    assert inv.select("web") == HostSet("web[1-2]") and inv.host("web1").user == "b"
    assert inv.sources == (str(first), str(second))
    assert Inventory.from_files([tmp_path]).select("web") == HostSet("web[1-2]")  # a directory


def test_shipped_examples_load() -> None:
    local = Inventory.from_files([EXAMPLES / "local.yaml"])
    assert [h.spec() for h in local.hosts()] == [h.spec() for h in Inventory.default().hosts()]
    lab = Inventory.from_files([EXAMPLES / "lab.yaml"])
    assert lab.select("web&prod") == HostSet("web[01-02]")
    assert lab.host("db02").sudo == "postgres" and lab.host("web01").proxy_jump
    assert lab.host("bastion-py312").spec().endswith("//via=bastion")
    ansible = Inventory.from_files([EXAMPLES / "ansible-example.yaml"])
    assert ansible.select("webservers:&prod") == HostSet("www[01-04].example.com")
    for inv in (local, lab, ansible):
        assert all(isinstance(h.spec(), str) for h in inv.hosts())


# ----------------------------------------------------------------------------- Ansible


ANSIBLE = """\
all:
  vars:
    ansible_user: ops
    ansible_python_interpreter: auto_silent
    ntp_server: ntp.example.com
  hosts:
    mail.example.com:
  children:
    web:
      hosts:
        www[01:03].example.com:
        www09.example.com:2222:
          ansible_host: 10.0.0.9
          ansible_ssh_private_key_file: ~/.ssh/k
          http_port: 8080
    db:
      hosts:
        db-[a:b]:
          ansible_become: true
          ansible_become_user: postgres
          ansible_timeout: 7
      vars:
        ansible_group_priority: 3
        xnet_proxy_jump: jump@mail.example.com
    local:
      hosts:
        localhost: {ansible_connection: local, ansible_python_interpreter: /usr/bin/python3}
    prod:
      children:
        web:
        db:
"""


def test_ansible_format(tmp_path: Path) -> None:
    inv = load(tmp_path, ANSIBLE)
    assert str(inv.select("web")) == "www[01-03,09].example.com"
    assert str(inv.select("prod:!web")) == "db-a,db-b"
    www9 = inv.host("www09.example.com")
    assert (www9.address, www9.port, www9.user) == ("10.0.0.9", 2222, "ops")
    assert www9.identity_file == "~/.ssh/k" and www9.python == "python3"  # auto -> default
    assert www9.vars["http_port"] == 8080 and www9.vars["ntp_server"] == "ntp.example.com"
    assert www9.vars["ansible_port"] == "2222"
    dba = inv.host("db-a")
    assert dba.sudo == "postgres" and dba.proxy_jump == "jump@mail.example.com"
    assert dba.connect_timeout == 7
    assert dba.spec() == (
        "ssh=-l ops -J jump@mail.example.com -o ConnectTimeout=7 db-a//id=db-a//python=python3"
        "//sudo=postgres"
    )
    local = inv.host("localhost")
    assert (local.transport, local.python) == ("popen", "/usr/bin/python3")
    assert inv.host("mail.example.com").groups == ("ungrouped",)


def test_yaml_anchors_and_merge_keys(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """\
        all:
          children:
            web:
              vars: &defaults
                ansible_user: ops
                ansible_port: 2200
              hosts:
                a:
                  <<: *defaults
                  ansible_port: 22
                b:
                  <<: [{ansible_user: first}, *defaults]
        """,
    )
    assert (inv.host("a").port, inv.host("a").user) == (22, "ops")
    assert (inv.host("b").port, inv.host("b").user) == (2200, "first")


def test_merge_keys_still_catch_duplicates(tmp_path: Path) -> None:
    exc = error(tmp_path, "hosts:\n  a: {port: 1, <<: {port: 2}, port: 3}\n")
    assert "duplicate key 'port'" in exc.message and (exc.line, exc.column) == (2, 31)


def test_ansible_become_without_user_is_root(tmp_path: Path) -> None:
    inv = load(tmp_path, "all:\n  hosts:\n    a: {ansible_become: yes}\n")
    assert inv.host("a").sudo is True and inv.host("a").spec().endswith("//sudo=true")


def test_ansible_top_level_groups_without_all(tmp_path: Path) -> None:
    inv = load(tmp_path, "web:\n  hosts:\n    w1:\n    w2:\ndb:\n  hosts: {d1: }\n")
    assert inv.select("all") == HostSet("w[1-2],d1") and inv.children("all") == ["db", "web"]


def test_ansible_inventory_list_output_with_empty_ungrouped(tmp_path: Path) -> None:
    inv = load(tmp_path, "all:\n  children:\n    ungrouped: {}\n    web:\n      hosts: {w1: }\n")
    assert inv.select("all") == HostSet("w1") and not inv.groups["ungrouped"]


def test_unsupported_ansible_connection_fails_only_when_selected(tmp_path: Path) -> None:
    text = "all:\n  hosts:\n    win1: {ansible_connection: winrm}\n    lin1:\n"
    inv = load(tmp_path, text)
    assert inv.host("lin1").transport == "ssh"
    with pytest.raises(InventoryError) as info:
        inv.hosts("win1")
    assert "ansible_connection 'winrm' is not supported" in str(info.value)
    assert (info.value.line, info.value.column) == (3, 32)


@pytest.mark.parametrize(
    ("var", "words"),
    [
        ("ansible_hots: x", "unknown variable 'ansible_hots' (did you mean 'ansible_host'?)"),
        ("xnet_vai: x", "unknown variable 'xnet_vai' (did you mean 'xnet_via'"),
        ("xnet_x_foo: 1", "unknown variable 'xnet_x_foo'"),
        ("ansible_port: http", "ansible_port: expected a number"),
    ],
)
def test_ansible_variable_errors(tmp_path: Path, var: str, words: str) -> None:
    exc = error(tmp_path, f"all:\n  hosts:\n    a:\n      {var}\n")
    assert words in exc.message and exc.line == 4


def test_ansible_keeps_unknown_non_typo_variables(tmp_path: Path) -> None:
    inv = load(tmp_path, "all:\n  hosts:\n    a: {ansible_user_dir: /h, ansible_ssh_pass: s}\n")
    assert inv.host("a").vars == {"ansible_user_dir": "/h", "ansible_ssh_pass": "s"}


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("groups:\n  web:\n    hosts: [a\n", 4, 1, "YAML syntax"),
        (
            "groups:\n  web:\n    hosts: w1\n    vars: {prot: 22}\n",
            4,
            12,
            "unknown variable 'prot' (did you mean 'port'?)",
        ),
        (
            "groups:\n  web:\n    hosts: w1\n    vars:\n      port: seventy\n",
            5,
            13,
            "port: expected a number, got a string ('seventy')",
        ),
        (
            "hosts:\n  a:\n    env:\n      OK: x\n      BAD: [1]\n",
            5,
            12,
            "env.BAD: expected a string",
        ),
        ("hosts:\n  a: {port: 70000}\n", 2, 13, "expected a port number 1-65535"),
        (
            "hosts:\n  a: {transport: sshh}\n",
            2,
            18,
            "unknown transport 'sshh' (did you mean 'ssh'?)",
        ),
        ("hosts:\n  a: {connect_timeout: -1}\n", 2, 24, "positive number of seconds"),
        ("hosts:\n  a: {address: -oProxyCommand=x}\n", 2, 16, "cannot start with '-'"),
        ("hosts:\n  a: {chdir: /a//b}\n", 2, 14, "'//' cannot appear"),
        ("hosts:\n  a: {user: two words}\n", 2, 13, "without spaces"),
        ("hosts:\n  a: {sudo: [x]}\n", 2, 13, "sudo: expected a string"),
        ("hosts:\n  a: {hostname: x, address: y}\n", 2, 20, "set the same thing"),
        ("hosts:\n  a: {ansible_host: x}\n", 2, 7, "in xnet's format it is 'address'"),
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
            "groups:\n  web: {hosts: w1}\n  web: {hosts: w2}\n",
            3,
            3,
            "duplicate key 'web' (first at line 2)",
        ),
        ('groups:\n  web: {hosts: "web[01-x]"}\n', 2, 21, "bad host range 'web[01-x]'"),
        ("groups:\n  web:\n    hosts: web[01-\n", 3, 15, "'[' is never closed"),
        ("groups:\n  web: {hosts: 'a b'}\n", 2, 16, "'a b' is not a valid host name"),
        ("groups:\n  web: {hosts: [1]}\n", 2, 17, "expected host names"),
        ("groups:\n  'we b': {hosts: x}\n", 2, 3, "not a valid group name"),
        (
            "groups:\n  web: {hots: x}\n",
            2,
            9,
            "unknown key 'hots' in group 'web' (did you mean 'hosts'?)",
        ),
        ("groups:\n  web: {hosts: all}\n", 2, 16, "'all' is a group, not a host name"),
        ("grups:\n  web: {hosts: w}\n", 1, 1, "unknown section 'grups' (did you mean 'groups'?)"),
        ("groups: {}\nhots: {}\n", 2, 1, "unknown section 'hots'"),
        ("- a\n", 1, 1, "expected a mapping at the top level, got a list"),
        ("# nothing\n", 1, 1, "empty inventory"),
        ("all:\n  hosts: [a, b]\n", 2, 10, "expected a mapping of hosts, got a list"),
        ("all:\n  chidren: {}\n", 2, 3, "did you mean 'children'?"),
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
def test_errors_name_file_line_column(
    tmp_path: Path, text: str, line: int, column: int, words: str, reader: str
) -> None:
    exc = error(tmp_path, text)
    assert isinstance(exc, XnetError) and isinstance(exc, ValueError)
    assert words in exc.message, exc.message
    assert (exc.file, exc.line, exc.column) == (str(tmp_path / "inv.yaml"), line, column), str(exc)
    assert str(exc).startswith(f"{tmp_path / 'inv.yaml'}:{line}:{column}: ")


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no such inventory file"):
        Inventory.from_files([tmp_path / "nope.yaml"])
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InventoryError, match="not UTF-8"):
        Inventory.from_files([tmp_path / "bin.yaml"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InventoryError, match="no \\*.yaml"):
        Inventory.from_files([tmp_path / "empty"])


def test_pattern_errors_are_pattern_errors(tmp_path: Path) -> None:
    inv = load(tmp_path, LAB)
    with pytest.raises(PatternError, match="close names: prod"):
        inv.select("web&prdo")
    with pytest.raises(PatternError, match="selects no hosts"):
        inv.select("build&web")


# ----------------------------------------------------------------------------- fast reader
#
# Most inventories are read by a line-at-a-time reader (inventory_yaml._fast_compose) that
# builds the node graph PyYAML's compose would build; whatever it does not handle goes to
# compose. These tests hold it to that: same graph, same definitions, same errors.


FAST_COMPOSE = inventory_yaml._fast_compose  # the `reader` fixture may stand in for it


def compose(text: str) -> Any:
    loader = inventory_yaml._Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def graph(node: Any) -> Any:
    """Everything the reader uses from a node: kind, tag, value, style and position."""
    mark = (node.start_mark.line, node.start_mark.column)
    if node.id == "scalar":
        return (node.tag, node.value, node.style or "", mark, node.end_mark.line)
    if node.id == "sequence":
        return (node.tag, mark, [graph(item) for item in node.value])
    return (node.tag, mark, [(graph(k), graph(v)) for k, v in node.value])


def listed_inventory(groups: int = 3, per_group: int = 4) -> str:
    """The bench's worst case, small: every host a line of its own."""
    lines = ["vars:", "  user: bench", "groups:"]
    for g in range(groups):
        lines += [f"  g{g}:", "    hosts:"]
        lines += [f"      g{g}-n{n:02d}:" for n in range(per_group)]
        lines.append(f"    vars: {{python: /opt/py{g}/bin/python3}}")
    lines += ["  even:", "    children: [g0, g2]", "hosts:", "  g0-n00: {port: 2222}"]
    return "\n".join(lines) + "\n"


SHAPES = """\
# comments anywhere, at any indent
top:   # a comment after a key
  plain: some words here # and a comment
  types: [1, -2, 1.5, 0x1F, yes, No, ~, null, 2001-12-14, .inf, "1", '2']
  sexagesimal: 1:30
  quoted: ['it''s', "a 'b'", '', ""]
  flow: {a: 1, b: [x, {c: d}], e: , f: 'g'}
  colons: a:b:c
  hashes: a#b
  brackets: web[01-03],db[1-2]
  unicode: caf\u00e9 \u65e5\u672c
  indentless:
  - one
  - two
  nested:
      - three
      -   four   # comment
  empty_flow: [ ]
  trailing_comma: [a, b, ]
  null_at_end:
  1: int key
  yes: bool key
  ~: null key
  a:b: colon key
  db-z.example.com:2222:
    x: 1
last: value
"""


@pytest.mark.parametrize(
    "text",
    [
        *(p.read_text() for p in sorted(EXAMPLES.glob("*.yaml"))),
        DEFAULT_INVENTORY,
        LAB,
        PRECEDENCE,
        ANSIBLE,
        listed_inventory(),
        SHAPES,
        "  indented: root\n  b: 1",
    ],
    ids=lambda text: text.splitlines()[0][:30],
)
def test_fast_reader_builds_the_graph_compose_builds(text: str) -> None:
    fast = FAST_COMPOSE(text)
    assert fast is not None  # the fast reader takes every one of these
    assert graph(fast) == graph(compose(text))


@pytest.mark.parametrize(
    "text",
    [
        "a: &x 1\nb: *x\n",  # anchors, aliases
        "a: {<<: {b: 1}}\n",  # merge keys
        "a: !!str 1\n",  # tags
        "a: |\n  text\n",  # block scalars
        "a: >\n  text\n",
        "a: one\n  two\n",  # multi-line scalars
        "a: 'one\n  two'\n",
        "a: [1,\n  2]\n",  # a flow collection over lines
        'a: "esc\\tape"\n',  # escapes
        "a:\tb\n",  # tabs
        "a: b\r\nc: d\r\n",  # CRLF
        "---\na: b\n",  # document markers and directives
        "%YAML 1.1\n---\na: b\n",
        "? a\n: b\n",  # complex keys
        "'quoted key': b\n",
        "a: {b: c:d}\n",  # ':' inside a flow scalar (libyaml versions differ)
        "a: [b: c]\n",  # a pair in a flow sequence
        "- a\n- b\n",  # not a mapping at the top
        "a:\n  - b: c\n",  # a mapping in a sequence
        "a:\n  -\n",  # a null item
        "a: b\n c: d\n",  # bad indentation
        "a: b: c\n",
        "",  # nothing at all
        "# only a comment\n",
    ],
)
def test_fast_reader_leaves_the_rest_to_compose(text: str) -> None:
    assert FAST_COMPOSE(text) is None


# Pieces of random documents: mostly what inventories hold, plus the edges of the fast
# reader's subset (types, quotes, ':' and '#' inside scalars) and a few things beyond it.
_ATOMS = [
    *["web01", "g000-n001", "x_y", "deploy@10.0.0.1", "/usr/bin/python3", "C.UTF-8"],
    *["web[01-03]", "a:b", "a#b", "a,b", "a b", "caf\u00e9", "x\u00a0"],
    *["1", "-1", "1.5", "0x1F", "0o17", "1_000", "1e3", "+1", "1:30", ".inf", "2001-12-14"],
    *["yes", "No", "OFF", "y", "n", "~", "null", "true", "t", "f", "o", "-x", "--", "-.5"],
    *["a&b", "a*b", "a!b", "a%b", "a@b", "a'b", 'a"b', "a?b", "a|b", "a>b", "a`b"],
    *["a{b", "a}b", "a]b", "a[b", "'q'", "'it''s'", '"dq"', "''"],
]
_EDGES = [
    "&a",
    "*a",
    "!t",
    "|",
    ">",
    "?",
    "%",
    "@",
    "`",
    "-",
    ": x",
    "x:",
    " #c",
    "\t",
    '"e\\t"',
    "<<",
]
_KEYS = ["hosts", "vars", "groups", "children", "a", "port", "env", "1", "yes", "~", "a:b", "a#b"]


def _scalar(rnd: random.Random) -> str:
    text = rnd.choice(_ATOMS if rnd.random() < 0.92 else _EDGES)
    return rnd.choice([text, text, text, f"'{text}'", f'"{text}"'])


def _flow(rnd: random.Random, depth: int = 0) -> str:
    if depth > 2 or rnd.random() < 0.4:
        return _scalar(rnd)
    if rnd.random() < 0.5:
        items = [_flow(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
        return "[" + rnd.choice([", ", ",", " , "]).join(items) + rnd.choice(["]", " ]", ", ]"])
    values = [_flow(rnd, depth + 1) if rnd.random() < 0.8 else "" for _ in range(rnd.randint(0, 3))]
    pairs = [rnd.choice(_KEYS) + rnd.choice([": ", ":  "]) + value for value in values]
    return "{" + rnd.choice(["", " "]) + ", ".join(pairs) + rnd.choice(["}", " }"])


def _block(rnd: random.Random, indent: int, lines: list[str], head: str, depth: int = 0) -> None:
    """Write a value after ``head`` (``key:`` or ``-``), on its line or below it."""
    comment = rnd.choice(["", "", "", " # c", "  "])
    kind = rnd.random() if depth < 4 else 0
    if kind < 0.3 or (head.endswith("-") and kind >= 0.55):
        lines.append(f"{head} {_scalar(rnd)}{comment}")
    elif kind < 0.4:
        lines.append(head + rnd.choice(["", " ", " # c"]))  # null
    elif kind < 0.55:
        lines.append(f"{head} {_flow(rnd)}{comment}")
    else:
        lines.append(head + comment)
        if rnd.random() < 0.1:
            lines.append(" " * rnd.randint(0, 8) + "# between")
        if kind < 0.7:
            inner = indent if rnd.random() < 0.3 else indent + rnd.choice([1, 2, 4])
            for _ in range(rnd.randint(1, 3)):
                _block(rnd, inner, lines, " " * inner + "-", depth + 2)
        else:
            inner = indent + rnd.choice([1, 2, 2, 4])
            for _ in range(rnd.randint(1, 4)):
                _block(rnd, inner, lines, " " * inner + rnd.choice(_KEYS) + ":", depth + 1)


def random_yaml(rnd: random.Random) -> str:
    lines: list[str] = []
    base = rnd.choice([0, 0, 0, 2])
    for _ in range(rnd.randint(1, 5)):
        _block(rnd, base, lines, " " * base + rnd.choice(_KEYS) + ":")
    text = "\n".join(lines) + rnd.choice(["\n", "", "\n\n"])
    if rnd.random() < 0.15:  # and now and then, a random edit
        at = rnd.randrange(len(text) + 1)
        edit = rnd.choice([" ", ":", "-", "#", "'", "\n", "  ", "[", "}", ", ", ": "])
        text = text[:at] + edit + text[at + rnd.randint(0, 2) :]
    return text


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False))
def test_fast_reader_agrees_with_libyaml_on_random_documents(rnd: random.Random) -> None:
    text = random_yaml(rnd)
    fast = FAST_COMPOSE(text)
    try:
        reference = compose(text)
    except yaml.YAMLError:
        assert fast is None, f"the fast reader took what libyaml refuses: {text!r}"
        return
    if fast is not None:
        assert graph(fast) == graph(reference), text


def test_random_documents_are_mostly_read_fast() -> None:
    """The test above means something only if the fast reader takes many of its documents."""
    taken = sum(FAST_COMPOSE(random_yaml(random.Random(i))) is not None for i in range(300))
    assert taken > 100


@pytest.mark.parametrize(
    ("name", "text"),
    [
        *((p.name, p.read_text()) for p in sorted(EXAMPLES.glob("*.yaml"))),
        ("lab", LAB),
        ("precedence", PRECEDENCE),
        ("ansible", ANSIBLE),
        ("listed", listed_inventory()),
    ],
)
def test_both_readers_define_and_resolve_the_same(
    name: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read() -> tuple[Definitions, list[dict[str, Any]]]:
        defs = Definitions()
        read_yaml(text, name, defs)
        inv = Inventory.from_text(text, name)
        return defs, [host.as_dict() for host in inv.hosts()]

    assert FAST_COMPOSE(text) is not None
    fast = read()
    monkeypatch.setattr(inventory_yaml, "_fast_compose", lambda text: None)
    slow = read()
    assert fast[0] == slow[0]  # every group, host and variable, with its position
    assert fast[1] == slow[1]  # every resolved setting


# A long inventory in the fast reader's subset; each case below changes one line of it.
LISTED = """\
vars:
  user: deploy
groups:
  web:
    hosts:
      web01:
      web02:
      web03:
    priority: 1
    vars:
      port: 2201
  db:
    hosts:
      db01:
      db02:
    children: [web]
"""


def with_line(number: int, line: str) -> str:
    lines = LISTED.splitlines()
    lines[number - 1] = line
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("number", "line", "column", "words"),
    [
        (7, "      web02: {port: seventy}", 21, "port: expected a number"),
        (11, "      prot: 2201", 7, "unknown variable 'prot' (did you mean 'port'?)"),
        (8, "      web01:", 7, "duplicate key 'web01' (first at line 6)"),
        (7, "      web/02:", 7, "'web/02' is not a valid host name"),
        (15, "      all:", 7, "'all' is a group, not a host name"),
        (9, "    hots: x", 5, "unknown key 'hots' in group 'web' (did you mean 'hosts'?)"),
        (9, "    priority:", 14, "priority: expected a whole number, got nothing"),
        (16, "    children: [wbe]", 16, "unknown child group 'wbe' (did you mean 'web'?)"),
        (14, "      db01: {transport: popen, via: web4}", 37, "via names unknown host 'web4'"),
        (14, "      db01: {transport: socket}", 25, "transport socket needs a port"),
    ],
)
def test_errors_found_on_the_fast_path_name_file_line_column(
    tmp_path: Path, number: int, line: str, column: int, words: str, reader: str
) -> None:
    """The fast reader takes each of these files; the errors point where compose's do."""
    text = with_line(number, line)
    assert FAST_COMPOSE(text) is not None
    exc = error(tmp_path, text)
    assert words in exc.message, exc.message
    assert (exc.file, exc.line, exc.column) == (str(tmp_path / "inv.yaml"), number, column), exc


def test_a_cycle_found_on_the_fast_path(tmp_path: Path, reader: str) -> None:
    text = with_line(9, "    children: [db]")
    assert FAST_COMPOSE(text) is not None
    exc = error(tmp_path, text)
    assert exc.message == "cycle in children: web -> db -> web" and (exc.line, exc.column) == (
        16,
        16,
    )


def test_an_error_in_a_later_file_leaves_no_trace(tmp_path: Path) -> None:
    good = write(tmp_path, listed_inventory(), "1.yaml")
    bad = write(tmp_path, with_line(11, "      prot: 2201"), "2.yaml")
    with pytest.raises(InventoryError, match="prot") as info:
        Inventory.from_files([good, bad])
    assert (info.value.file, info.value.line) == (str(bad), 11)
    assert Inventory.from_files([good, good]).sources == (str(good), str(good))


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


# ----------------------------------------------------------------------------- discovery


@pytest.fixture
def clean(tmp_path: Path) -> dict[str, str]:
    """An environment without inventory settings, with an empty config dir."""
    (tmp_path / "cwd").mkdir()
    (tmp_path / "config").mkdir()
    return {"XDG_CONFIG_HOME": str(tmp_path / "config")}


def test_discovery_order(tmp_path: Path, clean: dict[str, str]) -> None:
    cwd = tmp_path / "cwd"
    user = tmp_path / "config" / "xnet" / "inventory.yaml"
    assert find_inventories((), clean, cwd) == ([], "embedded default")
    user.parent.mkdir()
    user.write_text("hosts: {u: }\n")
    assert find_inventories((), clean, cwd) == ([user], "user config")
    (cwd / "xnet.yaml").write_text("hosts: {p: }\n")
    assert find_inventories((), clean, cwd) == ([cwd / "xnet.yaml"], "./xnet.yaml")
    env = {**clean, "XNET_INVENTORY": os.pathsep.join(["a.yaml", "", "b.yaml"])}
    assert find_inventories((), env, cwd) == ([Path("a.yaml"), Path("b.yaml")], "XNET_INVENTORY")
    assert find_inventories(["f.yaml"], env, cwd) == ([Path("f.yaml")], "--inventory")


def test_discovery_defaults_to_dot_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    user = tmp_path / ".config" / "xnet" / "inventory.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("hosts: {u: }\n")
    assert find_inventories((), {}, tmp_path) == ([user], "user config")


def test_load_inventory_uses_what_it_finds(tmp_path: Path, clean: dict[str, str]) -> None:
    cwd = tmp_path / "cwd"
    assert load_inventory((), clean, cwd).select("all") == HostSet("localhost")
    (cwd / "xnet.yaml").write_text("hosts: {p1: }\n")
    assert load_inventory((), clean, cwd).select("all") == HostSet("p1")
    extra = write(tmp_path, "hosts: {e1: }\n", "e.yaml")
    env = {**clean, "XNET_INVENTORY": str(extra)}
    assert load_inventory((), env, cwd).select("all") == HostSet("e1")
    with pytest.raises(InventoryError, match="no such inventory file"):
        load_inventory((), {**clean, "XNET_INVENTORY": str(tmp_path / "gone.yaml")}, cwd)


def test_embedded_default() -> None:
    inv = Inventory.default()
    (host,) = inv.hosts()
    assert (host.name, host.transport, host.groups) == ("localhost", "popen", ("local",))
    assert host.spec() == "popen//id=localhost"
    assert "transport: popen" in DEFAULT_INVENTORY
    assert inv.sources == ("<default inventory>",)


def test_recursive_merge_key_is_an_error(tmp_path: Path) -> None:
    exc = error(tmp_path, "hosts:\n  a: &loop\n    port: 1\n    <<: *loop\n")
    assert "refers to the mapping itself" in exc.message


def test_ssh_host_via_another_host(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts:\n  a: {via: b, address: 10.0.0.9}\n  b: {address: 10.0.0.2}\n")
    assert inv.host("a").via == "b" and inv.host("a").spec().endswith("//via=b")


def test_ansible_group_priority_through_a_merge_key(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "all:\n"
        "  vars: &d {ansible_group_priority: 5}\n"
        "  children:\n"
        "    web:\n"
        "      hosts: {a: }\n"
        "      vars: {<<: *d}\n",
    )
    assert inv.host("a").name == "a"
