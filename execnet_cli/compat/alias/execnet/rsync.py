"""``execnet.rsync`` of the alias: execnet_cli's RSync (see docs/xdist.md, "rsync")."""

from __future__ import annotations

from execnet_cli._remote.channel import Channel
from execnet_cli._remote.engine import BaseGateway
from execnet_cli.gateway import Gateway
from execnet_cli.rsync import RSync

__all__ = ["BaseGateway", "Channel", "Gateway", "RSync"]
