"""``execnet.gateway_base`` of the alias: channels, errors, serializer, execution models.

Built from the same table as a worker's ``execnet.gateway_base`` (``_remote/compat.py``),
so code sees the same names and functions on both sides.
"""

from __future__ import annotations

from execnet_cli._remote.compat import gateway_base_exports

globals().update(gateway_base_exports())

__all__ = sorted(gateway_base_exports())
