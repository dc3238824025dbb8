"""The far half of ``via=``: a relay that runs inside an existing gateway.

Sent with ``remote_exec(relay_module)``. The first item says what to relay to:

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

CHUNK = 1 << 20


def _pump_process_output(channel, process) -> None:  # type: ignore[no-untyped-def]
    fd = process.stdout.fileno()
    try:
        while True:
            data = os.read(fd, CHUNK)
            if not data:
                break
            channel.send(data)
        channel.send(process.wait())
    except OSError:  # the controller went away (ChannelClosed is an OSError)
        pass


def _pump_socket_output(channel, sock) -> None:  # type: ignore[no-untyped-def]
    try:
        while True:
            try:
                data = sock.recv(CHUNK)
            except OSError:
                data = b""
            if not data:
                break
            channel.send(data)
        channel.send(0)
    except OSError:  # the controller went away (ChannelClosed is an OSError)
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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
    channel.send("ok")
    pump = threading.Thread(target=_pump_process_output, args=(channel, process), daemon=True)
    pump.start()
    stdin_fd = stdin.fileno()
    try:
        for item in channel:
            if isinstance(item, bytes):
                try:
                    _write_all(stdin_fd, item)
                except OSError:
                    pass  # the process is gone; its exit status follows
            elif item == "eof":
                stdin.close()
            elif item == "kill":
                process.kill()
    finally:
        try:
            stdin.close()
        except OSError:
            pass
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        pump.join(5)
        stdout.close()


def relay_tcp(channel, host, port, timeout) -> None:  # type: ignore[no-untyped-def]
    sock = socket.create_connection((host, port), timeout)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    channel.send("ok")
    pump = threading.Thread(target=_pump_socket_output, args=(channel, sock), daemon=True)
    pump.start()
    try:
        for item in channel:
            if isinstance(item, bytes):
                try:
                    sock.sendall(item)
                except OSError:
                    pass
            elif item == "eof":
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            elif item == "kill":
                break
    finally:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        pump.join(5)
        sock.close()


if __name__ == "__channelexec__":
    request = channel.receive()  # type: ignore[name-defined]  # noqa: F821
    if request[0] == "spawn":
        relay_process(channel, request[1])  # type: ignore[name-defined]  # noqa: F821
    elif request[0] == "tcp":
        relay_tcp(channel, *request[1:])  # type: ignore[name-defined]  # noqa: F821
    else:
        raise ValueError(f"unknown relay request {request[0]!r}")
