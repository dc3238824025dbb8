"""Which execnet does the worker run? Recorded for the runner to check."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("n", range(4))
def test_engine_recorded(engine_record, n):
    record = engine_record()
    assert record["execnet_version"]
