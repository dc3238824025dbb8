"""The tag and value of a plain YAML scalar, without PyYAML wherever the answer is sure.

Importing PyYAML costs ~30 ms of CPU, more than reading a 64-host inventory with the fast
reader. A plain scalar is a string unless one of YAML 1.1's implicit resolvers (null, bool,
int, float, timestamp, merge, value), as PyYAML's safe loader registers them, matches it.
Each resolver watches a few first characters (``EAGER``), and the numeric ones admit few
characters and at most one dot. So host names, addresses (``10.0.0.1``: three dots), paths,
words and plain decimal numbers are decided here; anything else (``1e3``, ``0x1f``, ``-1``,
``2024-01-01``, ``~``) goes to PyYAML's own resolver and constructor, imported then.
``tests/test_inventory_plain.py`` checks the answers given here against PyYAML's.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["BOOL", "EAGER", "INT", "NULL", "STR", "tag", "value"]

STR = "tag:yaml.org,2002:str"
NULL = "tag:yaml.org,2002:null"
BOOL = "tag:yaml.org,2002:bool"
INT = "tag:yaml.org,2002:int"

#: First characters some implicit resolver watches: a plain scalar starting otherwise is a str.
EAGER = frozenset("yYnNtTfFoO-+0123456789.<~=!&*")
#: What the bool and null resolvers match; other words starting with a letter are strings.
_TRUE = frozenset(["yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"])
_FALSE = frozenset(["no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"])
_NULL = frozenset(["null", "Null", "NULL"])
#: Every character the int, float and timestamp resolvers admit (after the first).
_NUMERIC = frozenset("0123456789_+-:.eE infINFaAnNtTZ\tbxabcdefABCDEF")


def _sure(text: str) -> str:
    """The tag of the non-empty plain scalar ``text`` when it is sure without PyYAML, else ""."""
    first = text[0]
    if first not in EAGER:
        return STR
    if first.isalpha():  # only the bool and null resolvers watch letters
        if text in _TRUE or text in _FALSE:
            return BOOL
        return NULL if text in _NULL else STR
    if first in "<~=!&*":
        return ""
    if text.isdigit() and text.isascii() and (first != "0" or text == "0"):
        return INT  # [1-9][0-9]* or 0; 0NN may be octal, or a string (089)
    if text.count(".") > 1 or not _NUMERIC.issuperset(text):
        return STR  # each numeric resolver admits one dot at most, and only these characters
    return ""


def tag(text: str) -> str:
    """The tag PyYAML's safe loader resolves the plain scalar ``text`` to."""
    if not text:
        return NULL
    return _sure(text) or _yaml()[0].resolve(_yaml()[2], text, (True, False))


def value(tag: str, text: str) -> Any:
    """The Python value PyYAML's safe constructor makes of a plain scalar with this tag."""
    if tag == STR:
        return text
    if tag == NULL:
        return None
    if tag == BOOL:
        return text in _TRUE
    if tag == INT and text.isdigit() and text.isascii() and (text[0] != "0" or text == "0"):
        return int(text)
    constructor, scalar_node = _yaml()[1], _yaml()[2]
    return constructor.yaml_constructors[tag](constructor, scalar_node(tag, text))


@functools.cache
def _yaml() -> tuple[Any, Any, Any]:
    """PyYAML's resolver, safe constructor and ScalarNode, imported on first need."""
    import yaml

    return yaml.resolver.Resolver(), yaml.constructor.SafeConstructor(), yaml.ScalarNode
