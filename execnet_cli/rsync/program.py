"""Starting the remote half of rsync in a gateway.

The remote half is five modules of ``_remote`` (``rsync`` and its ``rsync_*`` siblings),
too much for one module and not part of every worker's bootstrap (most gateways never
sync). ``start`` sends them as source with a small pure function that installs them as a
package in the worker, under a name that carries a digest of their text: a worker compiles
them once, and a worker that already has another version of them keeps both apart.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from typing import Any

from .._remote.channel import Channel

__all__ = ["REMOTE_MODULES", "start"]

#: The remote half, in the order the worker loads it (each after what it imports).
REMOTE_MODULES = ("rsync_tree", "rsync_delta", "rsync_recv", "rsync_send", "rsync")


@functools.lru_cache(maxsize=1)
def bundle() -> tuple[str, list[tuple[str, str]]]:
    """(package name, [(module name, source)]) of the remote half."""
    sources = []
    digest = hashlib.sha256()
    for name in REMOTE_MODULES:
        spec = importlib.util.find_spec(f"execnet_cli._remote.{name}")
        assert spec is not None and spec.origin is not None
        with open(spec.origin, encoding="utf-8") as source:
            text = source.read()
        sources.append((name, text))
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return f"xnet_rsync_{digest.hexdigest()[:16]}", sources


def _rsync_main(channel: object, package: str, modules: list) -> None:
    """Runs in the worker: install the modules (once) as ``package``, then serve."""
    import sys
    import threading
    import types

    fresh = types.ModuleType(package)
    fresh.__path__ = []  # type: ignore[attr-defined]
    fresh.__dict__["loading"] = threading.Lock()
    root = sys.modules.setdefault(package, fresh)  # atomic: one root (and lock) per package
    with root.__dict__["loading"]:  # two syncs starting at once in one worker load it once
        if package + ".rsync" not in sys.modules:
            for name, source in modules:
                module = types.ModuleType(package + "." + name)
                module.__package__ = package
                module.__file__ = package + "/" + name + ".py"
                sys.modules[module.__name__] = module
                exec(compile(source, module.__file__, "exec"), module.__dict__)
    sys.modules[package + ".rsync"].serve(channel)  # type: ignore[attr-defined]


def start(gateway: Any) -> Channel:
    """A channel to a fresh remote half in ``gateway``, waiting for its first item."""
    package, modules = bundle()
    channel: Channel = gateway.remote_exec(_rsync_main, package=package, modules=modules)
    return channel
