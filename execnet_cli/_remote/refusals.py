"""Refused connections for the server's log, throttled: a flood must not flood the log too.

Stdlib only, Python 3.8+ (a sibling of ``sockets``, shipped with it).
"""

from __future__ import annotations

import sys
from typing import Callable, Dict, Optional

#: Refusals logged one line each per LOG_INTERVAL seconds; the rest are counted per
#: address and reason and summed up in one line when the interval ends.
LOG_BURST = 20
LOG_INTERVAL = 10.0
#: Addresses a summary line names one by one (the others are counted together).
LOG_SUMMARY_ADDRESSES = 5


def stderr_log(line: str) -> None:
    try:
        sys.stderr.write(f"xnet serve: {line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class RefusalLog:
    """Refused connections for the log, throttled: a flood must not flood the log too.

    The first ``burst`` refusals of an interval are written as they come, one line each;
    the rest are counted per address and reason, and written as one line when the
    interval ends (``tick``) or the server stops (``flush``). A flood of any size so
    costs at most ``burst + 1`` lines per interval.
    """

    def __init__(
        self, write: Callable[[str], None], burst: int = LOG_BURST, interval: float = LOG_INTERVAL
    ) -> None:
        self.write = write
        self.burst = burst
        self.interval = interval
        self._started = 0.0
        self._ends = 0.0
        self._written = 0
        self._held: Dict[str, Dict[str, int]] = {}

    def add(self, peer: str, source: str, message: str, now: float) -> None:
        if now >= self._ends:
            self.flush(now)
            self._started, self._ends, self._written = now, now + self.interval, 0
        if self._written < self.burst:
            self._written += 1
            self.write(f"{peer} {message}")
            return
        reasons = self._held.setdefault(source, {})
        reasons[message] = reasons.get(message, 0) + 1

    def due(self) -> Optional[float]:
        """When the next summary line is due; None when nothing is held back."""
        return self._ends if self._held else None

    def tick(self, now: float) -> None:
        if self._held and now >= self._ends:
            self.flush(now)

    def flush(self, now: float) -> None:
        """Write the summary of what was held back, if anything."""
        if not self._held:
            return
        totals = {source: sum(reasons.values()) for source, reasons in self._held.items()}
        ranked = sorted(totals, key=totals.__getitem__, reverse=True)
        parts = []
        for source in ranked[:LOG_SUMMARY_ADDRESSES]:
            reasons = sorted(self._held[source].items(), key=lambda item: -item[1])
            detail = ", ".join(f"{count} {message}" for message, count in reasons)
            parts.append(f"{source}: {totals[source]} ({detail})")
        others = ranked[LOG_SUMMARY_ADDRESSES:]
        if others:
            parts.append(f"{len(others)} other addresses: {sum(totals[s] for s in others)}")
        elapsed = max(0.0, min(now, self._ends) - self._started)
        self.write(
            f"{sum(totals.values())} more connections refused or dropped in {elapsed:.0f}s, "
            f"not logged one by one: {'; '.join(parts)}"
        )
        self._held = {}
