"""Did-you-mean hints for a misspelt key, host, group or variable: one wording everywhere."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: How alike a word must be to a known one to be suggested (difflib's ratio).
CUTOFF = 0.6


def close_matches(
    word: str, choices: Iterable[str], n: int = 3, cutoff: float = CUTOFF
) -> list[str]:
    """The known words most like ``word``, best first (at most ``n``)."""
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=cutoff)


def did_you_mean(word: str, choices: Iterable[str], n: int = 3, cutoff: float = CUTOFF) -> str:
    """`` (did you mean 'x' or 'y'?)`` for a near miss, else "" (append it to a message)."""
    close = close_matches(word, choices, n, cutoff)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
