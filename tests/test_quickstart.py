"""execnet's quickstart, unchanged but for its import line, must always work."""

from __future__ import annotations

import subprocess
import sys

import execnet_cli as execnet

QUICKSTART = """\
import execnet_cli as execnet
gateway = execnet.makegateway()
channel = gateway.remote_exec("channel.send('hello from remote!')")
message = channel.receive()
print(f"Received from remote: {message}")
channel.send('hello from local!')
channel.waitclose()
gateway.exit()
"""


def test_quickstart_script_as_written(tmp_path):
    script = tmp_path / "quickstart.py"
    script.write_text(QUICKSTART)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Received from remote: hello from remote!\n"
    assert out.stderr == ""


def run_quickstart(close_first: bool = False) -> str:
    gateway = execnet.makegateway()
    channel = gateway.remote_exec("channel.send('hello from remote!')")
    message = channel.receive()
    if close_first:
        channel.waitclose(10)  # the remote's close has arrived: execnet's send raises now
    channel.send("hello from local!")
    channel.waitclose()
    gateway.exit()
    return f"Received from remote: {message}"


def test_quickstart_200_times():
    for _ in range(200):
        assert run_quickstart() == "Received from remote: hello from remote!"


def test_quickstart_when_close_arrives_first():
    assert run_quickstart(close_first=True) == "Received from remote: hello from remote!"
