"""``execnet.multi`` of the alias: groups and multi-channels."""

from __future__ import annotations

from execnet_cli.group import Group, MultiChannel, default_group, makegateway, set_execmodel

__all__ = ["Group", "MultiChannel", "default_group", "makegateway", "set_execmodel"]
