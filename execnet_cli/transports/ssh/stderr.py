"""An ssh worker's stderr, copied to ours by one writer thread for all connections.

A worker's stderr channel carries the shell's complaints (``python3: not found``) and
what the worker writes there itself. It used to have a thread per connection blocked in
paramiko's ``recv_stderr``: on a fan-out, one more thread per host to create, schedule
and join. Here the channel's stderr buffer is a sink that paramiko's transport thread
feeds: it keeps the last ``STDERR_TAIL`` bytes (for error messages) and queues the data
to one writer thread, started when some worker writes and ended when idle.

The writer writes to ``sys.stderr`` under the name ``xnet-ssh-stderr-<address>`` of the
host whose text it writes (``fleet.strays`` attributes a run's stray stderr by it), and
only then grants the server window for that data, so a stuck stderr still holds the
remote worker back instead of our memory growing.
"""

from __future__ import annotations

import codecs
import queue
import sys
import threading
from typing import Any, Optional, Tuple

from .channel import ForwardingPipe, send_window_adjust

__all__ = ["STDERR_TAIL", "THREAD_PREFIX", "StderrSink"]

STDERR_TAIL = 4096
#: The writer's name while it writes a host's text: the prefix, then the host's address.
THREAD_PREFIX = "xnet-ssh-stderr-"
#: How long the writer waits for more before it ends.
IDLE = 0.5


class StderrSink(ForwardingPipe):
    """Stands in for paramiko's ``BufferedPipe`` as ``channel.in_stderr_buffer``."""

    def __init__(self, channel: Any, address: str) -> None:
        self.channel = channel
        self.name = THREAD_PREFIX + address
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.done = threading.Event()  # everything fed is written
        self._tail = bytearray()
        self._lock = threading.Lock()
        self._fed = False
        self._closed = False

    def text(self) -> str:
        """The last few KiB fed."""
        with self._lock:
            return bytes(self._tail).decode("utf-8", "replace").strip()

    def wait(self, timeout: Optional[float]) -> bool:
        """Wait until what the channel delivered is written (after it closed)."""
        return self.done.wait(timeout)

    # -- what paramiko's Channel calls --------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            self._fed = True
            self._tail += data
            del self._tail[:-STDERR_TAIL]
        _WRITER.put(self, bytes(data))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            fed = self._fed
        if fed:
            _WRITER.put(self, None)  # after its data: flush the decoder, then done
        else:
            self.done.set()

    # -- what the writer calls ----------------------------------------------------------------

    def write(self, data: Optional[bytes]) -> None:
        text = self.decoder.decode(data or b"", data is None)
        if text:
            try:
                sys.stderr.write(text)
                sys.stderr.flush()
            except (OSError, ValueError, AttributeError):
                pass
        if data is None:
            self.done.set()
            return
        ack = self.channel._check_add_window(len(data))
        if ack > 0 and not self.channel.closed:
            try:
                send_window_adjust(self.channel, ack)
            except Exception:  # the connection is gone: nothing more will come
                pass


class _Writer:
    """One thread writing every sink's data in arrival order; it runs while there is any."""

    def __init__(self) -> None:
        self._items: queue.SimpleQueue[Tuple[StderrSink, Optional[bytes]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def put(self, sink: StderrSink, data: Optional[bytes]) -> None:
        with self._lock:
            self._items.put((sink, data))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=THREAD_PREFIX, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        thread = threading.current_thread()
        while True:
            try:
                sink, data = self._items.get(timeout=IDLE)
            except queue.Empty:
                with self._lock:
                    if self._items.empty():
                        self._thread = None
                        return
                continue
            thread.name = sink.name
            try:
                sink.write(data)
            except Exception:  # one host's trouble must not stop the others' stderr
                sink.done.set()
            thread.name = THREAD_PREFIX


_WRITER = _Writer()
