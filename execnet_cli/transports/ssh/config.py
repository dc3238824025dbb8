"""Reading OpenSSH client config files as OpenSSH would, for ``settings``.

``-F FILE`` (or ``ssh_config=``) alone, ``none`` for no file; otherwise the user's
``~/.ssh/config`` then ``/etc/ssh/ssh_config``. ``Include`` lines are inlined here
(paramiko's ``SSHConfig`` does not follow them), relative paths from ``~/.ssh`` or
``/etc/ssh`` as OpenSSH resolves them.

``lookup`` is paramiko's ``SSHConfig.lookup`` with two changes for the shell's sake:
``ProxyCommand`` is left unexpanded (``settings.proxy_command_line`` expands it, quoting each
value, when it runs; paramiko pastes names in raw), and the names it substitutes into
``Match exec`` are shell-quoted.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shlex
import threading
from typing import Any, Dict, List, Optional, Tuple

from ...errors import SpecError

USER_CONFIG = "~/.ssh/config"
SYSTEM_CONFIG = "/etc/ssh/ssh_config"
MAX_INCLUDE_DEPTH = 16


#: What ``load_config_text`` read: (path, $HOME) -> (text, the files and directories it
#: depends on with their mtimes). Each host of a run asks; the files are read again only
#: when one of them changed (or an Include directory gained a file).
_loaded: Dict[Tuple[Optional[str], str], Tuple[str, List[Tuple[str, Optional[int]]]]] = {}
_loaded_lock = threading.Lock()


def load_config_text(path: Optional[str]) -> str:
    """The config text OpenSSH would read: ``path`` alone (``none``: nothing), else user
    then system file."""
    key = (path, os.path.expanduser("~"))
    with _loaded_lock:  # held while reading: the hosts of a run ask at once, one reads
        cached = _loaded.get(key)
        if cached is not None and all(_mtime(name) == mtime for name, mtime in cached[1]):
            return cached[0]
        watched: List[Tuple[str, Optional[int]]] = []
        text = _load_config_text(path, watched)
        _loaded[key] = (text, watched)
        return text


def _mtime(path: str) -> Optional[int]:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _watch(path: str, watched: Optional[List[Tuple[str, Optional[int]]]]) -> None:
    if watched is not None:
        watched.append((path, _mtime(path)))


def _load_config_text(path: Optional[str], watched: List[Tuple[str, Optional[int]]]) -> str:
    if path is not None:
        if path.lower() == "none":  # as OpenSSH's -F none: no config file at all
            return ""
        full = os.path.expanduser(path)
        try:
            text = _read_watched(full, watched)
        except OSError as exc:
            raise SpecError(f"ssh config file {path!r}: {exc.strerror or exc}") from exc
        return expand_includes(text, os.path.dirname(full) or ".", path, watched=watched)
    parts = []
    for candidate, base in ((USER_CONFIG, "~/.ssh"), (SYSTEM_CONFIG, "/etc/ssh")):
        try:
            text = _read_watched(os.path.expanduser(candidate), watched)
        except OSError:
            continue  # no user or system config: OpenSSH's defaults
        text = expand_includes(text, os.path.expanduser(base), candidate, watched=watched)
        parts.append("Host *\n" + text)
    return "\n".join(parts)


def _read_watched(path: str, watched: Optional[List[Tuple[str, Optional[int]]]]) -> str:
    """The text of ``path``, noted in ``watched`` (read or not) so a later change is seen."""
    _watch(path, watched)
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def expand_includes(
    text: str,
    base: str,
    name: str,
    depth: int = 0,
    watched: Optional[List[Tuple[str, Optional[int]]]] = None,
) -> str:
    """Inline ``Include`` lines (paramiko ignores them); relative paths start at ``base``.
    ``watched`` gets every file read and every directory searched."""
    if depth > MAX_INCLUDE_DEPTH:
        raise SpecError(f"ssh config {name!r}: Include nested too deeply")
    out = []
    for line in text.splitlines():
        match = re.match(r"\s*include(?:\s*=\s*|\s+)(.+)$", line, re.IGNORECASE)
        if not match:
            out.append(line)
            continue
        for pattern in shlex.split(match.group(1)):
            pattern = os.path.expanduser(pattern)
            if not os.path.isabs(pattern):
                pattern = os.path.join(base, pattern)
            _watch(os.path.dirname(pattern), watched)
            for path in sorted(glob.glob(pattern)):
                try:
                    text = _read_watched(path, watched)
                except OSError:
                    continue
                out.append(expand_includes(text, base, path, depth + 1, watched))
    return "\n".join(out)


def lookup(config_text: str, host: str, first: str = "") -> Dict[str, object]:
    """The options ``first`` then ``config_text`` give ``host`` (first value wins), tokens
    expanded. ``config_text`` (the files, shared by the hosts of a run) is parsed once;
    ``first`` (a host's own options) each time, and its blocks go before the file's."""
    try:
        with _loaded_lock:
            config = _parsed(config_text)
        if first:
            files = config
            config = _config_class().from_text(first)
            config._config = config._config + files._config
        return dict(config.lookup(host))
    except Exception as exc:  # ConfigParseError, ImportError of Match exec's invoke, ...
        raise SpecError(f"ssh config for {host!r}: {exc}") from exc


@functools.lru_cache(maxsize=64)
def _parsed(config_text: str) -> Any:
    """The parsed config, once per text: the hosts of a run mostly share theirs (each
    lookup then costs only the matching)."""
    return _config_class().from_text(config_text)


@functools.cache
def _config_class() -> Any:
    """paramiko's ``SSHConfig``, minus its raw substitution into shell commands."""
    import paramiko

    class Config(paramiko.SSHConfig):  # type: ignore[misc]
        def _tokenize(self, config: Any, target_hostname: str, key: str, value: str) -> str:
            if key == "proxycommand" or not _has_token(value):
                return value  # paramiko would call gethostname, getpwuid... to change nothing
            if key == "match-exec":
                config = dict(config)
                for name in ("hostname", "user"):
                    if name in config:
                        config[name] = shlex.quote(str(config[name]))
                target_hostname = shlex.quote(target_hostname)
            return str(super()._tokenize(config, target_hostname, key, value))

    return Config


def _has_token(value: object) -> bool:
    """Whether paramiko's tokenizer could change ``value`` (all its tokens start so)."""
    return not isinstance(value, str) or "%" in value or "~" in value
