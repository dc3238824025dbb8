"""Defaults from ``$XDG_CONFIG_HOME/xnet/config.yaml`` (``~/.config`` when unset).

A flag beats its ``XNET_*`` environment variable, which beats the config file, which beats
xnet's own default (click's order: command line, ``envvar``, ``default_map``, default):

    key        flag           environment      value
    fanout     -f/--fanout    XNET_FANOUT      hosts worked on at once (a whole number >= 1)
    timeout    -t/--timeout   XNET_TIMEOUT     seconds a host's job may take (> 0)
    retries    --retries      XNET_RETRIES     connection attempts after the first (>= 0)
    tolerate   --tolerate     XNET_TOLERATE    N or N%: hosts not ok that still exit 0
    color      --color        XNET_COLOR       auto, always or never
    inventory  -i             XNET_INVENTORY   a file or directory, or a list of them

``inventory`` comes after ``./xnet.yaml`` (a project's own inventory wins over the user's
default) and before ``$XDG_CONFIG_HOME/xnet/inventory.yaml``; relative paths in it are
relative to the config file. A key applies to every command that has the option (not
``timeout`` to ``xnet shell``: its ``-t`` is named apart, a session is not a job). A bad
file is one line naming it, the line and the key, with exit status 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional

import click

from ..errors import XnetError
from ..suggest import did_you_mean

__all__ = [
    "COLORS",
    "Config",
    "ConfigError",
    "config_path",
    "console",
    "load_config",
]

COLORS = ("auto", "always", "never")


class ConfigError(XnetError, ValueError):
    """A config file that cannot be used: ``str()`` is ``file:line: key: what is wrong``."""


def _whole(value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"expected a whole number >= {low}, got {value!r}")
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"expected a positive number of seconds, got {value!r}")
    return float(value)


def _color(value: Any) -> str:
    if value not in COLORS:
        raise ValueError(f"expected one of {', '.join(COLORS)}, got {value!r}")
    return str(value)


def _tolerate(value: Any) -> str:
    from .exitcodes import Tolerance

    text = str(value)
    Tolerance.parse(text)  # raises ValueError with the reason
    return text


def _paths(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item for item in items):
        raise ValueError("expected a path or a list of paths")
    return tuple(items)


#: Each key: its check, and the click parameter it is the default of (None: not a flag's).
KEYS: dict[str, tuple[Callable[[Any], Any], Optional[str]]] = {
    "fanout": (lambda v: _whole(v, 1), "fanout"),
    "timeout": (_seconds, "timeout"),
    "retries": (lambda v: _whole(v, 0), "retries"),
    "tolerate": (_tolerate, "tolerance"),
    "color": (_color, None),
    "inventory": (_paths, None),
}


class Config:
    """The checked values of a config file (empty when there is none)."""

    def __init__(self, values: Mapping[str, Any], path: Optional[Path] = None) -> None:
        self.values = dict(values)
        self.path = path

    def defaults_for(self, params: set[str]) -> dict[str, Any]:
        """A command's ``default_map``: the values of the flags it has."""
        found = {}
        for key, value in self.values.items():
            param = KEYS[key][1]
            if param in params:
                found[param] = value
        return found

    @property
    def color(self) -> str:
        return str(self.values.get("color", "auto"))

    @property
    def inventories(self) -> tuple[Path, ...]:
        """The config's ``inventory``, ``~`` expanded, relative to the config file."""
        base = self.path.parent if self.path else Path.cwd()
        return tuple(base / Path(p).expanduser() for p in self.values.get("inventory", ()))


def config_path() -> Path:
    home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(home) / "xnet" / "config.yaml"


def load_config(path: Optional[Path] = None) -> Config:
    """Read and check the config file; a missing one is an empty config."""
    path = config_path() if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config({})
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"{path}: cannot read the config file: {reason}") from None
    import yaml  # only when there is a file: commands without one do not pay for PyYAML

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not YAML: {getattr(exc, 'problem', exc)}") from None
    finally:
        loader.dispose()
    if node is None:
        return Config({}, path)
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}:{node.start_mark.line + 1}: expected a mapping of key: value")
    values: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key, line = key_node.value, key_node.start_mark.line + 1
        if key not in KEYS:
            hint = did_you_mean(str(key), KEYS)
            raise ConfigError(f"{path}:{line}: unknown key {key!r}{hint}; known: {', '.join(KEYS)}")
        value = yaml.constructor.SafeConstructor().construct_document(value_node)
        try:
            values[key] = KEYS[key][0](value)
        except ValueError as exc:
            raise ConfigError(f"{path}:{value_node.start_mark.line + 1}: {key}: {exc}") from None
    return Config(values, path)


def current() -> Config:
    """The config of the running command (loaded by ``xnet``'s group), else an empty one."""
    context = click.get_current_context(silent=True)
    found = context.find_root().meta.get("xnet.config") if context is not None else None
    return found if isinstance(found, Config) else Config({})


def console(stderr: bool = False, **options: Any) -> Any:
    """A rich ``Console`` that follows ``--color`` (``never``: no styles at all; ``always``:
    colors in a pipe too, without taking it for a terminal)."""
    from rich.console import Console

    context = click.get_current_context(silent=True)
    color = context.find_root().meta.get("xnet.color", "auto") if context is not None else "auto"
    if color == "never":
        options["color_system"] = None
    elif color == "always":
        options.setdefault("color_system", "256")
    return Console(stderr=stderr, **options)
