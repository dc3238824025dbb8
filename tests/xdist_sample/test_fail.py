"""Tests that fail in different ways."""

from __future__ import annotations

import pytest


def test_assert_fails():
    assert 1 + 1 == 3


def test_raises_error():
    raise KeyError("missing")


@pytest.mark.parametrize("n", [1, 2, 3])
def test_param_some_fail(n):
    assert n != 2


@pytest.fixture
def broken_fixture():
    raise RuntimeError("fixture setup fails")


def test_error_in_setup(broken_fixture):
    pass
