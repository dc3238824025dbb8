"""``execnet.rsync`` of the alias: execnet_cli's RSync."""

from __future__ import annotations

from execnet_cli.rsync import RSync

__all__ = ["RSync"]
