"""Where an inventory comes from, and reading its files.

The first that applies is used: ``-i/--inventory`` (repeatable), ``XNET_INVENTORY`` (a list
separated by ``os.pathsep``), ``./xnet.yaml``, the ``inventory`` of xnet's config file,
``$XDG_CONFIG_HOME/xnet/inventory.yaml`` (``~/.config`` by default), then the embedded
default (``model.DEFAULT_INVENTORY``): a ``local`` group holding ``localhost`` as a popen
worker. A directory stands for its ``*.yaml``/``*.yml`` files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Optional, Union

from .schema import InventoryError, Mark

__all__ = ["find_inventories", "read_sources"]


def read_sources(paths: Sequence[Union[str, Path]]) -> Iterator[tuple[str, str]]:
    """(text, source name) of each file, in order; a directory gives its YAML files by name."""
    for path in paths:
        for file in _expand_dir(Path(path)):
            yield _read_text(file), str(file)


def _expand_dir(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        if not found:
            raise InventoryError("directory holds no *.yaml or *.yml inventory", Mark(str(path)))
        return found
    return [path]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError("no such inventory file", Mark(str(path))) from None
    except UnicodeDecodeError as exc:
        raise InventoryError(f"not UTF-8 text ({exc.reason})", Mark(str(path))) from None
    except OSError as exc:
        raise InventoryError(f"cannot read inventory: {exc.strerror}", Mark(str(path))) from None


def find_inventories(
    paths: Sequence[Union[str, Path]] = (),
    environ: Optional[Mapping[str, str]] = None,
    cwd: Optional[Path] = None,
    configured: Sequence[Union[str, Path]] = (),
) -> tuple[list[Path], str]:
    """The inventory files to use and where that choice came from; ``[]`` means the default.

    Flags beat ``XNET_INVENTORY``, which beats ``./xnet.yaml``, which beats ``configured``
    (the ``inventory`` of xnet's config file), which beats the user's file. Files named by a
    flag, the variable or the config must exist; the two conventional files are optional.
    """
    env = os.environ if environ is None else environ
    if paths:
        return [Path(p) for p in paths], "--inventory"
    listed = [p for p in env.get("XNET_INVENTORY", "").split(os.pathsep) if p]
    if listed:
        return [Path(p) for p in listed], "XNET_INVENTORY"
    project = Path(cwd or Path.cwd()) / "xnet.yaml"
    if project.is_file():
        return [project], "./xnet.yaml"
    if configured:
        return [Path(p) for p in configured], "config file"
    config = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    user = Path(config) / "xnet" / "inventory.yaml"
    if user.is_file():
        return [user], "user config"
    return [], "embedded default"
