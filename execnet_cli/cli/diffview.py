"""``--diff``: the most common output once, then how every other output differs from it.

Like ``clush --diff``: hosts are grouped by what their job printed (``fleet.diffing``);
the largest group's output is shown whole under its folded host set (the reference),
and each other group as a unified diff against it, its ``+++`` line naming its hosts.
Hosts whose job did not run to an end (unreachable, interrupted, a bug of ours) are shown
as the gathered view shows them: their error under their folded host set.
"""

from __future__ import annotations

from collections.abc import Callable

from ..fleet.diffing import OutputClasses, unified_diff
from ..inventory import natural_key
from .live import LiveRenderer
from .render import GatherRenderer, Painter, header, outcome_label, said

__all__ = ["DiffRenderer", "LiveDiffRenderer"]

_DIFF_STYLES = (("---", "bold"), ("+++", "bold"), ("@@", "cyan"), ("-", "red"), ("+", "green"))


def _style(line: str) -> str:
    for start, style in _DIFF_STYLES:
        if line.startswith(start):
            return style
    return ""


class DiffRenderer(GatherRenderer):
    """The diff view instead of the gathered one (in a pipe; at a terminal, mixed into the
    live table: ``LiveDiffRenderer``)."""

    def finish(self, elapsed: Callable[[], float]) -> None:
        self.close()
        classes = OutputClasses()
        unclassed = []
        for name in sorted(self.result, key=natural_key):
            if classes.add(self.result[name]) is None:
                unclassed.append(name)
        ranked = classes.ranked()
        painter = self.out_painter
        if ranked:
            names, reference = ranked[0]
            others = len(ranked) - 1
            what = "the only output" if not others else f"the most common output, {others} differ"
            self.out.print(header(self.out, names, what), soft_wrap=True, highlight=False)
            for stream, text in reference.output:
                if stream != "log":
                    painter.write(text)
            for other_names, other in ranked[1:]:
                for line in unified_diff(reference, names, other, other_names):
                    painter.write(line, _style(line))
        self._errors(painter, set(unclassed))
        super(GatherRenderer, self).finish(elapsed)  # the summary, not the gathered view

    def _errors(self, painter: Painter, names: set[str]) -> None:
        """The hosts without output to compare, as the gathered view shows them."""
        for hosts, result in self.result.gathered(self.verbose):
            if not names & set(hosts):
                continue
            label = outcome_label(result)
            self.out.print(header(self.out, hosts, label), soft_wrap=True, highlight=False)
            for line in said(result, label, self.verbose):
                painter.write(line, "bold red")


class LiveDiffRenderer(DiffRenderer, LiveRenderer):
    """The diff view after the live table, at a terminal."""
