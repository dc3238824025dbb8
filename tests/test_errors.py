"""One error tree: every exception the package defines derives from XnetError.

The few that do not are listed with the reason; each is caught and translated at a boundary
(``raise ... from exc``) before it could reach a caller.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import execnet_cli
from execnet_cli.errors import XnetError

#: name -> why it stays outside the tree
OUTSIDE_THE_TREE = {
    # an internal signal of the fork servers: the open falls back to spawning
    "execnet_cli.transports.forkserver.ForkUnavailable": "internal",
}


def defined_exceptions():
    for info in pkgutil.walk_packages(execnet_cli.__path__, "execnet_cli."):
        if ".compat.alias" in info.name:
            continue  # the alias re-exports ours
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
                and not name.startswith("_")
            ):
                yield f"{info.name}.{name}", obj


def test_every_public_exception_is_in_the_tree():
    strays = [
        name
        for name, cls in defined_exceptions()
        if not issubclass(cls, XnetError) and name not in OUTSIDE_THE_TREE
    ]
    assert strays == []


def test_the_exceptions_outside_the_tree_still_exist():
    found = {name for name, _ in defined_exceptions()}
    assert set(OUTSIDE_THE_TREE) <= found


def test_execnet_names_and_builtin_bases_are_kept():
    from execnet_cli.errors import RSyncError, SpecError
    from execnet_cli.transports.sockets import SecretError

    assert execnet_cli.TimeoutError is not TimeoutError  # execnet's own name
    assert issubclass(SpecError, ValueError) and issubclass(SecretError, ValueError)
    assert issubclass(RSyncError, OSError)
    for cls in (execnet_cli.RemoteError, execnet_cli.HostNotFound, execnet_cli.DataFormatError):
        assert issubclass(cls, XnetError)
