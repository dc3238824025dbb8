"""The opt-in ``execnet`` alias: a directory whose ``execnet`` package re-exports ours.

Put ``alias_dir()`` first on ``PYTHONPATH`` and ``import execnet`` (pytest-xdist's, for
one) gives execnet_cli's engine, in the controller and in every worker. The alias is
never installed as ``execnet`` into site-packages, so a real execnet beside it keeps
working for everyone who did not opt in.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

__all__ = ["ALIAS_VERSION", "alias_dir"]

#: The execnet version the alias claims (clients such as pytest-xdist check it).
ALIAS_VERSION = "2.1.2"


def alias_dir() -> Path:
    """The directory that contains the alias ``execnet`` package (for ``PYTHONPATH``)."""
    from pathlib import Path  # not at import: the alias imports this module at startup

    return Path(__file__).resolve().parent / "alias"
