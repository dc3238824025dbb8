"""Tests that print, to stdout and stderr."""

from __future__ import annotations

import sys


def test_prints():
    print("hello from the sample test")
    assert True


def test_prints_stderr():
    sys.stderr.write("to stderr\n")
    assert True


def test_prints_and_fails():
    print("output before the failure")
    assert "a" == "b"


def test_prints_unicode():
    print("non-ascii: h\u00e9llo w\u00f6rld \u2603")
    assert True
