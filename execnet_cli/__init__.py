"""execnet_cli: execnet-compatible gateways and channels."""
from ._version import __version__
