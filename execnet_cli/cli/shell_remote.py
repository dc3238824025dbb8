"""One host's end of an ``xnet shell`` session: the local half of ``_remote/shell.py``.

``RemoteShell`` starts the remote REPL engine on an open gateway and speaks its items
(listed in ``_remote/shell.py``). Every item arrives in the gateway's receiver thread,
through a channel callback, and goes to the session's ``sink`` as ``(host, item)``, except
the answers the shell waits for itself (``hello``, ``completions``). When the channel
ends, the sink gets ``("lost", why)``.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any, Optional

from .._remote import shell as remote_shell
from ..errors import RemoteError
from ..gateway import Gateway

__all__ = ["HELLO_TIMEOUT", "RemoteShell", "Sink"]

#: How long the engine may take to start (it compiles its source) before the host is dropped.
HELLO_TIMEOUT = 30.0
#: How long Tab waits for the remote namespace's answer.
COMPLETE_TIMEOUT = 2.0

Sink = Callable[[str, tuple], None]
_END = object()


class RemoteShell:
    """The remote engine of one host, started at construction (which waits for its hello)."""

    def __init__(self, name: str, gateway: Gateway, sink: Sink) -> None:
        self.name = name
        self.gateway = gateway
        self._sink = sink
        self._answers: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.alive = True
        self._number = 0  # of the last statement sent
        self.channel = gateway.remote_exec(remote_shell)
        self.channel.setcallback(self._on_item, endmarker=_END)
        hello = self._answer("hello", HELLO_TIMEOUT)
        if hello is None:
            raise RemoteError(f"{name}: the remote shell did not start ({self._why_lost()})")
        self.facts: dict[str, Any] = hello[1]
        self._control = hello[2]

    def _on_item(self, item: Any) -> None:
        if item is _END:
            self.alive = False
            self._answers.put(None)
            self._sink(self.name, ("lost", self._why_lost()))
        elif isinstance(item, tuple) and item and item[0] in ("hello", "completions"):
            self._answers.put(item)
        elif isinstance(item, tuple) and item:
            self._sink(self.name, item)

    def _answer(self, kind: str, timeout: float) -> Optional[tuple]:
        """The next answer of ``kind`` (older ones are stale), or None (lost, timed out)."""
        try:
            while True:
                item = self._answers.get(timeout=timeout)
                if item is None:
                    self._answers.put(None)
                    return None
                if item[0] == kind:
                    return item
        except queue.Empty:
            return None

    def _why_lost(self) -> str:
        try:
            self.channel.waitclose(0)
        except RemoteError as exc:
            lines = str(exc).strip().splitlines()
            return lines[-1] if lines else "remote error"
        except (EOFError, OSError):
            return "connection lost"
        except Exception:  # still open (a timeout)
            return "no answer"
        return "the session ended"

    # -- requests ------------------------------------------------------------------------

    def run(self, source: str) -> None:
        """Start one statement; its output and its ``done`` go to the sink."""
        self._number += 1
        self._send(("run", source, self._number))

    def answer_input(self, line: Optional[str]) -> None:
        """Answer ``("input",)``: a line, "" for end of file, None for Ctrl-C."""
        self._send(("line", line))

    def interrupt(self) -> None:
        """Raise KeyboardInterrupt in the last statement sent (at its start if it has not
        started yet: the request may overtake it)."""
        if self.alive:
            try:
                self._control.send(("interrupt", self._number))
            except (OSError, EOFError):
                pass

    def complete(self, text: str) -> list[str]:
        """Names in the remote namespace that complete ``text`` ([] if no answer in time)."""
        while True:  # drop a late answer to an earlier request
            try:
                stale = self._answers.get_nowait()
            except queue.Empty:
                break
            if stale is None:
                self._answers.put(None)
                return []
        self._send(("complete", text))
        answer = self._answer("completions", COMPLETE_TIMEOUT)
        return list(answer[1]) if answer is not None else []

    def close(self, timeout: Optional[float] = None) -> None:
        """End the engine and the worker (asked, waited for with a bound, then killed)."""
        self._send(("bye",))
        self.gateway.exit(timeout)

    def _send(self, item: tuple) -> None:
        if self.alive:
            try:
                self.channel.send(item)
            except (OSError, EOFError):
                pass  # the end arrives through the callback
