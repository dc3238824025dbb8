"""Fixtures of the xdist sample project (a project of its own: see pytest.ini)."""

from __future__ import annotations

import json
import os
import sys

import pytest

#: File that the engine test appends one JSON line per worker to (set by the runner).
RECORD_ENV = "XNET_SAMPLE_RECORD"


def pytest_sessionstart(session):
    """On the controller, record which execnet xdist itself imported."""
    if not os.environ.get("PYTEST_XDIST_WORKER") and "xdist" in sys.modules:
        _append({"worker": None, **_describe(sys.modules.get("execnet"))})


def _describe(execnet):
    engine = sys.modules.get("xnet_remote.channel")
    try:
        group = getattr(execnet, "Group", None)
    except ImportError:  # a worker that cannot import the controller's execnet_cli
        group = None
    return {
        "pid": os.getpid(),
        "execnet_file": getattr(execnet, "__file__", None),
        "xnet_alias": bool(getattr(execnet, "__xnet_alias__", False)),
        "execnet_version": getattr(execnet, "__version__", None),
        "xnet_remote_loaded": "xnet_remote.worker" in sys.modules,
        # the whole API, with the channel class the worker's engine really uses
        "has_group": callable(group),
        "engine_channel": engine is not None and execnet.Channel is engine.Channel,
    }


def _append(record):
    path = os.environ.get(RECORD_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


@pytest.fixture
def engine_record():
    """Append a JSON record of this worker's execnet engine to $XNET_SAMPLE_RECORD."""

    def write():
        import execnet

        record = {"worker": os.environ.get("PYTEST_XDIST_WORKER"), **_describe(execnet)}
        _append(record)
        return record

    return write
