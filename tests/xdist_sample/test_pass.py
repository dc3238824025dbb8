"""Plain passing tests, many of them, so the load is spread over the workers."""

from __future__ import annotations

import threading

import pytest


@pytest.mark.parametrize("n", range(20))
def test_square(n):
    assert n * n == n**2


@pytest.mark.parametrize("word", ["alpha", "beta", "gamma", "delta", "epsilon"])
def test_upper(word):
    assert word.upper().lower() == word


class TestMethods:
    def test_one(self):
        assert [1, 2] + [3] == [1, 2, 3]

    def test_two(self, tmp_path):
        target = tmp_path / "file.txt"
        target.write_text("content")
        assert target.read_text() == "content"

    def test_worker_id(self, worker_id):
        assert worker_id not in ("", "master")


def test_runs_on_the_main_thread():
    # xdist asks for execmodel=main_thread_only: pytest must own the worker's main thread.
    assert threading.current_thread() is threading.main_thread()
