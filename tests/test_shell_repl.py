"""Statements from lines: the REPL's rules at a terminal, lenient ones for pipes."""

from __future__ import annotations

import pytest

from execnet_cli.cli.shell_repl import StatementReader, history_path


def feed(reader: StatementReader, lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        out += reader.push(line)
    return out + reader.finish()


def test_simple_statements_are_ready_at_once() -> None:
    reader = StatementReader()
    assert reader.push("x = 1") == ["x = 1"]
    assert reader.push("") == []
    assert not reader.pending


def test_a_block_ends_with_a_blank_line_at_a_terminal() -> None:
    reader = StatementReader()
    assert reader.push("def f():") == []
    assert reader.push("    return 1") == []
    assert reader.pending
    assert reader.push("") == ["def f():\n    return 1\n"]


def test_a_syntax_error_goes_to_the_host_as_it_is() -> None:
    assert StatementReader().push("1 +") == ["1 +"]


@pytest.mark.parametrize(
    "lines, statements",
    [
        (
            ["def f():", "    return 1", "print(f())"],
            ["def f():\n    return 1\n", "print(f())"],
        ),
        (["if x:", "    a", "else:", "    b"], ["if x:\n    a\nelse:\n    b\n"]),
        (["x = foo(", "1,", ")"], ["x = foo(\n1,\n)"]),
        (["@dec", "def g():", "    pass", "g()"], ["@dec\ndef g():\n    pass\n", "g()"]),
    ],
)
def test_pipes_need_no_blank_line_between_blocks(lines: list[str], statements: list[str]) -> None:
    assert feed(StatementReader(lenient=True), lines) == statements


def test_at_a_terminal_a_block_needs_its_blank_line() -> None:
    reader = StatementReader()
    assert reader.push("def f():") == []
    assert reader.push("    return 1") == []
    assert reader.push("print(f())") == ["def f():\n    return 1\nprint(f())"]


def test_history_follows_xdg_state_home(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert history_path() == tmp_path / "xnet" / "history"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert history_path() == tmp_path / ".local" / "state" / "xnet" / "history"
