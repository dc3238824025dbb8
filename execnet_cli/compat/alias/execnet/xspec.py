"""``execnet.xspec`` of the alias: gateway specifications."""

from __future__ import annotations

from execnet_cli.spec import XSpec

__all__ = ["XSpec"]
