"""The fast reader: the node graph PyYAML's compose builds, for the subset it takes; None else."""

from __future__ import annotations

import random
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from inventory_helpers import ANSIBLE, EXAMPLES, LAB, PRECEDENCE, listed_inventory

from execnet_cli.inventory import DEFAULT_INVENTORY
from execnet_cli.inventory.fast_reader import compose as fast_compose
from execnet_cli.inventory.yaml_reader import Loader


def compose(text: str) -> Any:
    """PyYAML's node graph for ``text``, composed by the loader the inventory uses."""
    loader = Loader(text)
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
    fast = fast_compose(text)
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
    assert fast_compose(text) is None


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
    fast = fast_compose(text)
    try:
        reference = compose(text)
    except yaml.YAMLError:
        assert fast is None, f"the fast reader took what libyaml refuses: {text!r}"
        return
    if fast is not None:
        assert graph(fast) == graph(reference), text


def test_random_documents_are_mostly_read_fast() -> None:
    """The test above means something only if the fast reader takes many of its documents."""
    taken = sum(fast_compose(random_yaml(random.Random(i))) is not None for i in range(300))
    assert taken > 100
