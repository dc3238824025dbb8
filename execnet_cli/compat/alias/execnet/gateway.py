"""``execnet.gateway`` of the alias: execnet_cli's Gateway."""

from __future__ import annotations

from execnet_cli.gateway import Gateway, RemoteStatus, RInfo

__all__ = ["Gateway", "RInfo", "RemoteStatus"]
