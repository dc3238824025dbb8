"""remote_exec argument preparation (no gateway needed)."""

from __future__ import annotations

import textwrap
import types

import pytest

from execnet_cli.source import prepare_request


def ok(channel, a, b=2):
    import math

    def inner(x):
        return math.sqrt(x) + len([x])

    channel.send(inner(a) + b)


def uses_module_global(channel):
    channel.send(textwrap.dedent("x"))


def recursive(channel, n=3):
    if n:
        recursive(channel, n - 1)


def test_pure_function_accepted():
    source, filename, call, kwargs = prepare_request(ok, {"a": 4})
    assert call == "ok" and kwargs == {"a": 4}
    assert source.lstrip("\n").startswith("def ok(channel, a, b=2):")
    assert filename.endswith("test_source.py")


def test_a_functions_lines_keep_their_numbers_in_the_file():
    """As in execnet: a worker's traceback names the function's lines as in its file."""
    source = prepare_request(ok, {})[0]
    assert source.index("def ok") == ok.__code__.co_firstlineno - 1


def test_recursion_is_not_a_global():
    assert prepare_request(recursive, {})[2] == "recursive"


def test_module_global_refused():
    with pytest.raises(ValueError, match="textwrap"):
        prepare_request(uses_module_global, {})


def test_lambda_refused():
    with pytest.raises(ValueError):
        prepare_request(lambda channel: None, {})


def test_kwargs_only_with_functions():
    with pytest.raises(ValueError, match="keyword"):
        prepare_request("pass", {"a": 1})


def test_other_types_refused():
    with pytest.raises(TypeError, match="int"):
        prepare_request(42, {})


def test_text_is_dedented():
    assert prepare_request("    x = 1\n    y = 2\n", {})[0] == "x = 1\ny = 2\n"


def test_module_source():
    source, filename, call, kwargs = prepare_request(types, {})
    assert "ModuleType" in source and call is None and filename.endswith("types.py")
