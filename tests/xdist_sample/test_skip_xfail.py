"""Skipped, xfail and xpass outcomes."""

from __future__ import annotations

import sys
import warnings

import pytest


def test_skip_inside():
    pytest.skip("skipped from inside the test")


@pytest.mark.skip(reason="skipped by a marker")
def test_skip_marker():
    pass


@pytest.mark.skipif(sys.version_info > (3,), reason="always on Python 3")
def test_skipif():
    pass


@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert False


@pytest.mark.xfail(reason="fixed meanwhile")
def test_xpass():
    assert True


def test_xfail_inside():
    pytest.xfail("decided at run time")


def test_warns_but_passes():
    warnings.warn(UserWarning("a warning from the worker", 42), stacklevel=1)
    assert True
