"""Workers on every CPython from 3.8 to the newest found here (issue 13, "across versions").

Also a script: ``python tests/test_execnet_interpreters.py --controllers all|ends
[--skip-version X.Y]`` prints the CPython 3.10+ interpreters found (every one, or the
oldest and the newest), one path a line, for ``make test-matrix``; what is missing or
skipped is said on stderr.

The interpreters are found, not named: ``python3`` and ``python3.N`` on PATH, the
versions under the pyenv root (``$PYENV_ROOT``, ``pyenv root``, or ``~/.pyenv``), and
this one; each is asked what it is. A version between 3.8 and the newest found that is
missing is skipped with a message naming it. Each test opens ``popen//python=PATH`` (a
new interpreter, our modules sent as source) and runs the conformance cases: exec,
channels, values of every type in both directions, errors, rsync.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import sys
from typing import Dict, Iterator, List, Tuple

import pytest

import execnet_cli

OLDEST = (3, 8)
TIMEOUT = 60
_PROBE = (
    "import platform, sys; print(platform.python_implementation(), "
    "sys.version_info[0], sys.version_info[1], sys.executable)"
)


def pyenv_root() -> str:
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        try:
            root = subprocess.run(
                ["pyenv", "root"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            root = ""
    return root or os.path.expanduser("~/.pyenv")


def candidates() -> List[str]:
    """Interpreter paths worth asking, in the order they are preferred."""
    found = [sys.executable]
    found += sorted(glob.glob(os.path.join(pyenv_root(), "versions", "*", "bin", "python3")))
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        found += sorted(glob.glob(os.path.join(directory, "python3.[0-9]*")))
        found.append(os.path.join(directory, "python3"))
    return [path for path in found if os.path.isfile(path) and os.access(path, os.X_OK)]


@functools.lru_cache(maxsize=1)
def find_interpreters() -> Dict[Tuple[int, int], str]:
    """(major, minor) -> the real path of one CPython of that version, 3.8 and later."""
    found: Dict[Tuple[int, int], str] = {}
    for path in dict.fromkeys(candidates()):
        try:
            out = subprocess.run(
                [path, "-c", _PROBE], capture_output=True, text=True, timeout=20
            ).stdout.split()
        except (OSError, subprocess.SubprocessError):
            continue  # a pyenv shim for an inactive version, a broken link...
        if len(out) == 4 and out[0] == "CPython":
            version = (int(out[1]), int(out[2]))
            if version >= OLDEST:
                found.setdefault(version, out[3])
    return found


def versions_to_run() -> List[Tuple[int, int]]:
    newest = max([*find_interpreters(), tuple(sys.version_info[:2])])
    return [(3, minor) for minor in range(OLDEST[1], newest[1] + 1)]


def interpreter(version: Tuple[int, int]) -> str:
    path = find_interpreters().get(version)
    if path is None:
        pytest.skip(
            f"no CPython {version[0]}.{version[1]} found (looked for python3.{version[1]} "
            f"on PATH and under the pyenv root {pyenv_root()})"
        )
    return path


@pytest.fixture(params=versions_to_run(), ids=lambda v: f"py{v[0]}.{v[1]}")
def worker(request: pytest.FixtureRequest) -> Iterator[execnet_cli.Gateway]:
    """A gateway to a new interpreter of each version found."""
    path = interpreter(request.param)
    group = execnet_cli.Group()
    try:
        gateway = group.makegateway(f"popen//python={path}")
        assert tuple(gateway._rinfo().version_info[:2]) == request.param
        yield gateway
    finally:
        group.terminate(10)


VALUES = [
    None, True, False, 0, 1, -1, 127, 128, 255, 256, 2**31, 2**63 - 1, -(2**63), 2**64,
    -(2**200), 0.0, -0.0, 1.5, float("inf"), float("-inf"), 1e308, 2 + 3j, "", "a",
    "x" * 63, "y" * 64, "z" * 300, "ünïcödé ✓ \U0001f600", "\ud800 lone surrogate", b"",
    b"\x00\xff", bytes(range(256)) * 300, (), (1,), (1, (2, (3,))), [], [1, [2, [3]]], {},
    {"k": [1, {"n": None}], 2: "two", (1, 2): b"t"}, set(), {1, "a", (2, 3)},
    frozenset(), frozenset({frozenset({1})}), list(range(300)), {i: str(i) for i in range(300)},
]  # fmt: skip

#: The same values, built by the worker itself (so they also travel worker -> controller).
MADE_REMOTELY = """
values = [
    None, True, False, 0, 1, -1, 127, 128, 255, 256, 2**31, 2**63 - 1, -(2**63), 2**64,
    -(2**200), 0.0, -0.0, 1.5, float("inf"), float("-inf"), 1e308, 2 + 3j, "", "a",
    "x" * 63, "y" * 64, "z" * 300, "\\u00fcn\\u00efc\\u00f6d\\u00e9 \\u2713 \\U0001f600",
    "\\ud800 lone surrogate", b"", b"\\x00\\xff", bytes(range(256)) * 300, (), (1,),
    (1, (2, (3,))), [], [1, [2, [3]]], {}, {"k": [1, {"n": None}], 2: "two", (1, 2): b"t"},
    set(), {1, "a", (2, 3)}, frozenset(), frozenset({frozenset({1})}), list(range(300)),
    {i: str(i) for i in range(300)},
]
for value in values:
    channel.send(value)
"""


def test_values_of_every_type_travel_both_ways(worker):
    echo = worker.remote_exec("for item in channel:\n    channel.send((type(item).__name__, item))")
    for value in VALUES:
        echo.send(value)
        assert echo.receive(TIMEOUT) == (type(value).__name__, value)
    echo.close()
    made = worker.remote_exec(MADE_REMOTELY)
    assert [made.receive(TIMEOUT) for _ in VALUES] == VALUES
    made.waitclose(TIMEOUT)


def test_nan_travels_as_nan(worker):
    channel = worker.remote_exec("x = channel.receive(); channel.send((x != x, float('nan')))")
    channel.send(float("nan"))
    same, made = channel.receive(TIMEOUT)
    assert same and made != made


def test_exec_kinds_and_channels_over_channels(worker):
    def double(channel, offset):
        for item in channel:
            channel.send(item * 2 + offset)

    doubling = worker.remote_exec(double, offset=1)
    doubling.send(20)
    assert doubling.receive(TIMEOUT) == 41
    doubling.close()
    relay = worker.remote_exec(
        "sub = channel.receive()\nsub.send(sub.receive() + 1)\n"
        "mine = channel.gateway.newchannel()\nchannel.send(mine)\nmine.send('from the worker')"
    )
    sub = worker.newchannel()
    relay.send(sub)
    sub.send(1)
    assert sub.receive(TIMEOUT) == 2
    assert relay.receive(TIMEOUT).receive(TIMEOUT) == "from the worker"
    items: list = []
    counted = worker.remote_exec("for i in range(5): channel.send(i)")
    counted.setcallback(items.append, endmarker="end")
    counted.waitclose(TIMEOUT)
    assert items == [0, 1, 2, 3, 4, "end"]


def test_errors_both_ways(worker):
    failing = worker.remote_exec("def f():\n    raise KeyError('deep')\nf()")
    with pytest.raises(execnet_cli.RemoteError, match="KeyError: 'deep'"):
        failing.waitclose(TIMEOUT)
    unsendable = worker.remote_exec("channel.send(object())")
    with pytest.raises(execnet_cli.RemoteError, match="DumpError"):
        unsendable.waitclose(TIMEOUT)
    waiting = worker.remote_exec(
        "try:\n    channel.receive()\nexcept channel.RemoteError as e:\n"
        "    channel.gateway.newchannel().send(None)\n    import sys\n"
        "    sys.stderr.write('worker saw: %s\\n' % e)"
    )
    with pytest.raises(execnet_cli.DumpError):
        waiting.send(object())  # refused here, before anything is sent
    waiting.close("stop")  # the worker's receive raises RemoteError("stop")
    assert worker.remote_status().numexecuting in (0, 1)


def test_rsync_to_the_worker(worker, tmp_path):
    source, dest = tmp_path / "source", tmp_path / "dest"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "data.bin").write_bytes(os.urandom(200_000))
    (source / "text.txt").write_text("hello")
    from execnet_cli.rsync import RSync

    rsync = RSync(source, verbose=False)
    rsync.add_target(worker, dest)
    rsync.send()
    assert (dest / "text.txt").read_text() == "hello"
    assert (dest / "sub" / "data.bin").read_bytes() == (source / "sub" / "data.bin").read_bytes()


def test_the_versions_found_are_reported():
    """Which interpreters this run used (``pytest -rA`` shows it); at least ours."""
    found = find_interpreters()
    assert tuple(sys.version_info[:2]) in found
    print({f"{a}.{b}": path for (a, b), path in sorted(found.items())})


#: The oldest Python our controller supports (pyproject's requires-python).
OLDEST_CONTROLLER = (3, 10)


def controllers(which: str, skip: str = "") -> List[str]:
    """Paths of the controller Pythons to test: "all" found, or the oldest and newest."""
    found = {v: p for v, p in find_interpreters().items() if v >= OLDEST_CONTROLLER}
    versions = sorted(found)
    if which == "ends" and versions:
        versions = sorted({versions[0], versions[-1]})
    chosen = []
    for version in versions:
        name = f"{version[0]}.{version[1]}"
        if name == skip:
            print(f"test-matrix: Python {name} skipped (tested already)", file=sys.stderr)
        else:
            chosen.append(found[version])
    if not chosen:
        print("test-matrix: no other controller Python found: nothing to run", file=sys.stderr)
    newest = max(versions, default=OLDEST_CONTROLLER)
    for minor in range(OLDEST_CONTROLLER[1], newest[1] + 1):
        if (3, minor) not in found and which == "all":
            print(
                f"test-matrix: no CPython 3.{minor} found (looked on PATH and under "
                f"{pyenv_root()}): skipped",
                file=sys.stderr,
            )
    return chosen


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="CPython controllers for make test-matrix")
    parser.add_argument("--controllers", choices=["all", "ends"], default="all")
    parser.add_argument("--skip-version", default="", help="X.Y: leave this version out")
    arguments = parser.parse_args()
    print("\n".join(controllers(arguments.controllers, arguments.skip_version)))


def test_matrix_with_no_other_controller_says_so_and_succeeds(tmp_path):
    """CI on a machine with one Python: make test-matrix prints why it runs nothing, exit 0."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    this = f"{sys.version_info[0]}.{sys.version_info[1]}"
    env = {"PATH": str(bin_dir), "PYENV_ROOT": str(tmp_path / "no-pyenv"), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, __file__, "--controllers", "ends", "--skip-version", this],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
    assert f"Python {this} skipped (tested already)" in done.stderr
    assert "no other controller Python found: nothing to run" in done.stderr


def test_matrix_ends_are_the_oldest_and_newest_found(monkeypatch):
    found = {(3, 10): "/p/3.10", (3, 11): "/p/3.11", (3, 12): "/p/3.12", (3, 9): "/p/3.9"}
    monkeypatch.setattr(sys.modules[__name__], "find_interpreters", lambda: found)
    assert controllers("ends") == ["/p/3.10", "/p/3.12"]
    assert controllers("ends", skip="3.12") == ["/p/3.10"]
    assert controllers("all", skip="3.11") == ["/p/3.10", "/p/3.12"]
