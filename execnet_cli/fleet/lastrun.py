"""What the last run did, kept between runs: its outcome sets, so ``-H @failed`` reruns them.

Every ``xnet run``, ``sh`` and ``rsync`` records which selected hosts ended which way in
``$XDG_STATE_HOME/xnet/last.json`` (``~/.local/state`` without it), also when it was
stopped by a signal; ``--save-run NAME`` keeps a copy as ``runs/NAME.json`` beside it.
The file is written to a temporary name and renamed over the old one, so a reader never
sees half a record, and two runs ending at once leave one whole record (the later).

The sets (``STATES``), which cover the selection exactly once:

    ok           the job ran and succeeded
    failed       the job failed, or hit a bug of ours
    unreachable  the gateway did not open
    timed-out    the job ran past its timeout
    not-run      the job did not run to an end: interrupted by a signal, or in a batch
                 that did not start (failure budget, failed canary)
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from ..errors import XnetError
from ..suggest import close_matches, did_you_mean
from .events import ERROR, FAILED, OK, TIMED_OUT, UNREACHABLE

__all__ = [
    "STATES",
    "LastRunError",
    "check_name",
    "load_state",
    "outcome_sets",
    "parse_reference",
    "record",
    "state_dir",
    "state_hint",
]

STATES = ("ok", "failed", "unreachable", "timed-out", "not-run")
#: Outcome (``events``) -> the set it is recorded in; anything else is ``not-run``.
_SET_OF = {
    OK: "ok",
    FAILED: "failed",
    ERROR: "failed",
    UNREACHABLE: "unreachable",
    TIMED_OUT: "timed-out",
}
#: A name ``--save-run`` accepts: it becomes a file name.
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"  # compiled on first use (``re``'s cache)
_VERSION = 1


class LastRunError(XnetError):
    """No such recorded run, or its record cannot be read (a usage error at the CLI)."""


def state_dir() -> Path:
    """``$XDG_STATE_HOME/xnet``, or ``~/.local/state/xnet`` (XDG's default)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "xnet"


def check_name(name: str) -> str:
    """``name`` if it can name a saved run; ValueError otherwise."""
    if not re.fullmatch(_NAME, name):
        raise ValueError(
            f"{name!r}: a run's name is letters, digits, '_', '.' and '-' (64 at most), "
            "starting with a letter or digit"
        )
    return name


def outcome_sets(selected: Sequence[str], outcomes: Mapping[str, str]) -> dict[str, list[str]]:
    """Each selected host in one of ``STATES``, from its outcome (none yet: ``not-run``)."""
    sets: dict[str, list[str]] = {state: [] for state in STATES}
    for name in selected:
        sets[_SET_OF.get(outcomes.get(name, ""), "not-run")].append(name)
    return sets


def record(
    sets: Mapping[str, Iterable[str]],
    command: str,
    selection: str,
    save_as: Optional[str] = None,
    directory: Optional[Path] = None,
) -> Path:
    """Write the run's sets as the last run (and as ``save_as``); return last.json's path."""
    where = directory or state_dir()
    data: dict[str, Any] = {
        "version": _VERSION,
        "command": command,
        "selection": selection,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hosts": {state: list(sets.get(state, ())) for state in STATES},
    }
    text = json.dumps(data, indent=1) + "\n"
    path = where / "last.json"
    _write_atomically(path, text)
    if save_as is not None:
        _write_atomically(where / "runs" / f"{check_name(save_as)}.json", text)
    return path


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def parse_reference(value: str) -> Optional[tuple[Optional[str], str]]:
    """``@failed`` -> (None, "failed"), ``@nightly:failed`` -> ("nightly", "failed"), or
    None when ``value`` names no run state (then it is something else: a file)."""
    if not value.startswith("@"):
        return None
    run, _, state = value[1:].rpartition(":")
    if state not in STATES or (run and not re.fullmatch(_NAME, run)):
        return None
    return run or None, state


def state_hint(value: str) -> str:
    """`` (did you mean '@failed'?)`` for an ``@`` value one typo away from a set, else ""."""
    if not value.startswith("@"):
        return ""
    run, colon, state = value[1:].rpartition(":")
    close = close_matches(state, STATES)
    return (
        did_you_mean(value, [f"@{run}{colon}{name}" for name in close], cutoff=0.0) if close else ""
    )


def load_state(run: Optional[str], state: str, directory: Optional[Path] = None) -> list[str]:
    """The hosts recorded in ``state`` for the last run (``run`` None) or a saved one."""
    where = directory or state_dir()
    path = where / "last.json" if run is None else where / "runs" / f"{run}.json"
    what = "the last run" if run is None else f"the run saved as {run!r}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        names = data["hosts"][state]
    except FileNotFoundError:
        hint = "" if run is None else _saved_hint(run, where)
        raise LastRunError(f"no record of {what} ({path}){hint}") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise LastRunError(f"cannot read the record of {what} ({path}): {exc}") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise LastRunError(f"the record of {what} ({path}) is not one xnet wrote")
    return names


def _saved_hint(run: str, where: Path) -> str:
    saved = sorted(p.stem for p in (where / "runs").glob("*.json"))
    if not saved:
        return "; no run was saved (--save-run NAME)"
    return did_you_mean(run, saved) or f"; saved runs: {', '.join(saved)}"
