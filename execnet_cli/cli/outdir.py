"""``--outdir DIR``: each host's output in files, written as it arrives.

For every selected host, ``DIR/HOST.stdout`` and ``DIR/HOST.stderr`` hold exactly what the
job printed on each stream (``run``: ``sys.stdout`` and ``sys.stderr``; ``sh``: the
command's two pipes), UTF-8, escape sequences as they were. Both files are created (empty
if nothing was printed) when the host's turn comes, replacing files of an earlier run, so
``tail -f DIR/web01.stdout`` follows a host. Errors (unreachable, a traceback, a timeout)
and xnet's own lines about a host are not job output: they stay in the report and in
``--json``. ``DIR`` is created like ``mkdir -p``.

Host names cannot hold ``/`` (inventory names are checked; ad-hoc names are addresses), so
each file lands directly in ``DIR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from ..fleet.events import Event, Exited, Failed, Output, Started

__all__ = ["SUFFIXES", "OutdirWriter"]

#: Stream -> file name suffix.
SUFFIXES = {"out": ".stdout", "err": ".stderr"}


class OutdirWriter:
    """Writes the ``out`` and ``err`` streams of each host's events to files in ``root``."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self._files: dict[tuple[str, str], TextIO] = {}

    def path(self, host: str, stream: str) -> Path:
        return self.root / f"{host}{SUFFIXES[stream]}"

    def handle(self, event: Event) -> None:
        if isinstance(event, Started):
            self._open(event.host)
        elif isinstance(event, Output) and event.stream in SUFFIXES:
            if (event.host, event.stream) not in self._files:
                self._open(event.host)
            out = self._files[event.host, event.stream]
            out.write(event.text)
            out.flush()
        elif isinstance(event, (Exited, Failed)):
            if (event.host, "out") not in self._files:
                self._open(event.host)  # ended before its turn came (interrupted)
            self._close(event.host)

    def _open(self, host: str) -> None:
        self._close(host)
        for stream in SUFFIXES:
            self._files[host, stream] = self.path(host, stream).open(
                "w", encoding="utf-8", errors="surrogateescape", newline=""
            )

    def _close(self, host: str) -> None:
        for stream in SUFFIXES:
            out = self._files.pop((host, stream), None)
            if out is not None:
                out.close()

    def close(self) -> None:
        for host, _ in list(self._files):
            self._close(host)
