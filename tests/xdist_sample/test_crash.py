"""A test that kills its worker: xdist must report it and start a new worker."""

from __future__ import annotations

import os


def test_before_crash():
    assert True


def test_crashes_worker():
    os._exit(3)


def test_after_crash():
    assert True
