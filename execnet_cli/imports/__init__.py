"""Import forwarding: workers import, from this controller, the modules they lack.

``serve_imports(gateway, policy)`` puts a finder last on the worker's ``sys.meta_path``
(``_remote/imports.py``); what it asks is answered under an ``ImportPolicy`` (allowed
roots, deny by default: ``policy``) from one process-wide cache of file contents
(``cache``), by an ``ImportServer`` (``server``). A gateway spec's ``forward_imports``
and ``xnet run --forward-imports`` / ``-m`` use it. See docs/imports.md.
"""

from __future__ import annotations

from .cache import CACHE, FileCache
from .policy import Found, ImportPolicy, Refused, Root, check_name, module_root
from .server import ImportServer, answering_channel, install_source, serve_imports, server_of

__all__ = [
    "CACHE",
    "FileCache",
    "Found",
    "ImportPolicy",
    "ImportServer",
    "Refused",
    "Root",
    "answering_channel",
    "check_name",
    "install_source",
    "module_root",
    "serve_imports",
    "server_of",
]
