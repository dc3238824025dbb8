"""Room for the descriptors gateways hold.

A local gateway holds about five descriptors in the controller (its two pipes, a pidfd,
the reader's wake-up pipe), so a thousand of them pass the usual soft limit of 1,024 open
files. As clush does, the soft limit is raised toward the hard limit (which an
unprivileged process may do) before the room runs short; past the hard limit, opening
fails with an error naming the limit and how to raise it, not a bare ``EMFILE``.
"""

from __future__ import annotations

import errno
import logging
import resource
from typing import Optional

from ..errors import GatewayError

log = logging.getLogger("execnet_cli.connect")

#: Descriptors kept free for opening one more gateway and for the application's own use.
RESERVE = 64
#: Descriptors one open gateway holds in the controller, about (``room_for``).
PER_GATEWAY = 5
_EXHAUSTED = (errno.EMFILE, errno.ENFILE)


def table_size() -> int:
    """The size of this process's descriptor table (Linux ``FDSize``: above the highest
    descriptor in use, a power of two): cheap to read, unlike counting the descriptors."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"FDSize:"):
                    return int(line.split()[1])
    except OSError:  # no /proc, or no descriptor left to open it with
        pass
    return 1 << 30  # unknown: as if the table were full


def make_room(reserve: int = RESERVE) -> None:
    """Raise the soft open-files limit when fewer than ``reserve`` descriptors may be free."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return
    size = table_size()
    if size + reserve > soft:
        _raise_soft(max(soft * 2, min(size, 1 << 20) * 2))


def room_for(gateways: int) -> None:
    """Before a run opens up to ``gateways`` at once: raise the soft limit now if they will
    need it (as clush does at start), rather than one gateway at a time while many threads
    open theirs together, each finding the room that the others are about to take."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return
    wanted = table_size() + gateways * PER_GATEWAY + RESERVE
    if wanted > soft:
        _raise_soft(max(wanted, soft * 2))


def _raise_soft(wanted: int) -> None:
    """Raise the soft open-files limit to ``wanted``, or as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if new <= soft:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    except (ValueError, OSError) as exc:  # a sandbox may refuse: opening then says why
        log.debug("could not raise the open-files limit from %d to %d: %s", soft, new, exc)
        return
    log.debug("open-files soft limit raised from %d to %d (hard limit %d)", soft, new, hard)


def exhausted(exc: BaseException) -> Optional[GatewayError]:
    """A clear error if ``exc`` (or what caused it) is running out of descriptors, else None."""
    cause: Optional[BaseException] = exc
    seen = set()  # a chain of causes and contexts may loop
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in _EXHAUSTED:
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            if cause.errno == errno.ENFILE:
                where = "the system's open-files table is full (fs.file-max)"
            else:
                where = f"this process has reached its open-files limit ({soft}, hard limit {hard})"
            return GatewayError(
                f"cannot open another gateway: {where}; each gateway holds ~5 descriptors: "
                "raise the limit (ulimit -n) or open fewer gateways at once"
            )
        cause = cause.__cause__ or cause.__context__
    return None
