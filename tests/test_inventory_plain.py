"""``inventory.plain``: the tags and values it decides without PyYAML are PyYAML's own."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from execnet_cli.inventory import plain


def yaml_tag(text: str) -> str:
    return str(yaml.resolver.Resolver().resolve(yaml.ScalarNode, text, (True, False)))


def yaml_value(tag: str, text: str) -> Any:
    return yaml.SafeLoader("").construct_object(yaml.ScalarNode(tag, text))


def test_eager_is_what_the_safe_loader_watches() -> None:
    watched = yaml.SafeLoader.yaml_implicit_resolvers
    assert None not in watched  # no resolver looks at every scalar
    assert frozenset(k for k in watched if k) == plain.EAGER


SCALARS = [
    *("127.0.0.2", "10.0.0.1", "1.2", "1.2.3", "::1", "fe80::1", "2001:db8::1", "0.0.0.0"),
    *("/usr/bin/python3", "fleet", "n01", "web-01.example.com", "yes", "No", "ON", "off"),
    *("null", "Null", "NULL", "nullish", "~", "true", "TRUE", "tRue", "y", "n", "Y", "on1"),
    *("22", "0", "00", "007", "089", "0755", "-1", "+1", "1_000", "0x1f", "0b101", "1:30"),
    *("1e3", "1.5e+3", ".5", ".inf", "-.inf", ".NaN", ".nan", "1.", "2024-01-02"),
    *("2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5", "<<", "=", "-", "+"),
    *("1 2", "12 ab", "3.14.15", "1.2e", "١٢", "²", "0.1.2.3/24", "t", "fa"),
]


@pytest.mark.parametrize("text", SCALARS)
def test_known_scalars_agree_with_pyyaml(text: str) -> None:
    tag = plain.tag(text)
    assert tag == yaml_tag(text)
    if tag.endswith((":merge", ":value")):
        return  # the fast reader gives up on these: never constructed here
    value = plain.value(tag, text)
    expected = yaml_value(tag, text)
    assert value == expected or (value != value and expected != expected)  # NaN
    assert type(value) is type(expected)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789._+-:eEinfaANTtZxbo yYl~<=/", min_size=1, max_size=12))
def test_sure_answers_agree_with_pyyaml(text: str) -> None:
    """Every answer given without PyYAML (``_sure``) is the one PyYAML gives."""
    sure = plain._sure(text)
    if sure:
        assert sure == yaml_tag(text), text


def test_common_inventory_scalars_need_no_pyyaml() -> None:
    """Host names, addresses, paths, users and ports are decided here."""
    for text in ("127.0.0.2", "/tmp/flab/userkey", "fleet", "22", "n01", "yes", "null"):
        assert plain._sure(text), text
