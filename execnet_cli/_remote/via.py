"""The far half of ``via=``: a relay that runs inside an existing gateway.

Made importable in the via gateway once (``Gateway.remote_modules``); ``serve`` runs
per relay. The first item says what to relay to:

- ``("spawn", argv)``: start ``argv`` (a worker's stage-1 command) and pump bytes
  between the channel and its stdin/stdout;
- ``("tcp", host, port, timeout)``: connect to host:port (an sshd or a socket gateway
  server seen from this host) and pump bytes between the channel and the socket.

Items from the controller: bytes (data), ``"eof"`` (close our writing side), ``"kill"``.
Items to the controller: ``"ok"`` once connected, bytes (data), and finally an int:
the spawned process's exit status (or 0 when the peer closed the TCP stream). The
relay ends when the controller closes the channel; it then ends what it started.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading

from .fdio import write_all

CHUNK = 1 << 20


def _relay(channel, read, write, end_input, kill, exit_status, stop, close) -> None:  # type: ignore[no-untyped-def]
    """Relay between ``channel`` and one endpoint until the controller closes the channel.

    Items from the controller: bytes (``write``), ``"eof"`` (``end_input``), ``"kill"``
    (``kill``; it returns True to end the relay). A pump thread sends what ``read`` gives,
    then ``exit_status()``; ``stop`` then ``close`` end the endpoint, the pump in between.
    """

    def pump() -> None:
        try:
            while True:
                data = read()
                if not data:
                    break
                channel.send(data)
            channel.send(exit_status())
        except OSError:  # the controller went away (ChannelClosed is an OSError)
            pass

    channel.send("ok")
    pumping = threading.Thread(target=pump, daemon=True)
    pumping.start()
    try:
        for item in channel:
            if isinstance(item, bytes):
                try:
                    write(item)
                except OSError:
                    pass  # the far end is gone; its exit status follows
            elif item == "eof":
                end_input()
            elif item == "kill" and kill():
                break
    finally:
        stop()
        pumping.join(5)
        close()


def _quietly(action):  # type: ignore[no-untyped-def]
    def run() -> None:
        try:
            action()
        except OSError:
            pass

    return run


def relay_process(channel, argv) -> None:  # type: ignore[no-untyped-def]
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
        start_new_session=True,
    )
    stdin, stdout = process.stdin, process.stdout
    assert stdin is not None and stdout is not None  # both are pipes (PIPE above)
    stdin_fd, stdout_fd = stdin.fileno(), stdout.fileno()

    def stop() -> None:
        _quietly(stdin.close)()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    _relay(
        channel,
        read=lambda: os.read(stdout_fd, CHUNK),
        write=lambda data: write_all(stdin_fd, data),
        end_input=stdin.close,
        kill=lambda: process.kill(),  # None: go on until the controller closes
        exit_status=process.wait,
        stop=stop,
        close=stdout.close,
    )


def relay_tcp(channel, host, port, timeout) -> None:  # type: ignore[no-untyped-def]
    sock = socket.create_connection((host, port), timeout)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def read() -> bytes:
        try:
            return sock.recv(CHUNK)
        except OSError:
            return b""

    _relay(
        channel,
        read=read,
        write=sock.sendall,
        end_input=_quietly(lambda: sock.shutdown(socket.SHUT_WR)),
        kill=lambda: True,
        exit_status=lambda: 0,
        stop=_quietly(lambda: sock.shutdown(socket.SHUT_RDWR)),
        close=sock.close,
    )


def serve(channel) -> None:  # type: ignore[no-untyped-def]
    """Relay what the controller's first item asks for: ("spawn", argv) or ("tcp", ...)."""
    request = channel.receive()
    if request[0] == "spawn":
        relay_process(channel, request[1])
    elif request[0] == "tcp":
        relay_tcp(channel, *request[1:])
    else:
        raise ValueError(f"unknown relay request {request[0]!r}")
