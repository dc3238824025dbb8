"""RSync over real popen gateways: trees, changes, deletes, links, big files, hostile peers."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import execnet_cli
from execnet_cli import rsync as rsync_module
from execnet_cli._remote import rsync_tree
from execnet_cli._remote.channel import Channel
from execnet_cli.gateway import Gateway
from execnet_cli.rsync import RSync, RSyncError, program


@pytest.fixture
def gw2() -> Iterator[execnet_cli.Gateway]:
    gateway = execnet_cli.makegateway("popen")
    yield gateway
    gateway.exit()


class RecordingRSync(RSync):
    """Remembers which files had their content sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("verbose", False)
        super().__init__(*args, **kwargs)
        self.sent: List[str] = []

    def _report_send_file(self, gateway: Any, modified_rel_path: str) -> None:
        self.sent.append(modified_rel_path)


def sync(source: Path, gw: Any, dest: Path, **options: Any) -> RecordingRSync:
    rsync = RecordingRSync(source)
    rsync.add_target(gw, dest, **options)
    rsync.send()
    return rsync


def make_tree(root: Path) -> None:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "top.txt").write_text("top\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "pkg" / "sub" / "data.bin").write_bytes(bytes(range(256)) * 10)
    script = root / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)


def snapshot(root: Path) -> Dict[str, Tuple[str, Any, int]]:
    """relpath -> (kind, content or link target, permission bits), mtimes for files."""
    found: Dict[str, Tuple[str, Any, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path), 0)
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", None, 0)
            else:
                found[rel] = ("file", (path.read_bytes(), st.st_mtime_ns), stat.S_IMODE(st.st_mode))
    return found


# -- whole trees --------------------------------------------------------------------------


def test_new_tree_is_copied_exactly(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    make_tree(source)
    rsync = sync(source, gw, dest)
    assert snapshot(dest) == snapshot(source)
    expected = ["pkg/__init__.py", "pkg/mod.py", "pkg/sub/data.bin", "run.sh", "top.txt"]
    assert sorted(rsync.sent) == expected
    assert (dest / "empty").is_dir() and not list((dest / "empty").iterdir())


def test_second_send_sends_nothing(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    make_tree(source)
    sync(source, gw, dest)
    assert sync(source, gw, dest).sent == []


def test_changed_file_alone_is_sent(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    make_tree(source)
    sync(source, gw, dest)
    (source / "pkg" / "mod.py").write_text("x = 2  # changed\n")
    rsync = sync(source, gw, dest)
    assert rsync.sent == ["pkg/mod.py"]
    assert snapshot(dest) == snapshot(source)


def test_same_content_new_mtime_only_touches(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    make_tree(source)
    sync(source, gw, dest)
    os.utime(source / "top.txt", ns=(1_000_000_000, 1_000_000_000))
    assert sync(source, gw, dest).sent == []  # the sha256 matched: no data
    assert (dest / "top.txt").stat().st_mtime_ns == 1_000_000_000


def test_checksum_option_finds_same_size_same_mtime_change(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    make_tree(source)
    sync(source, gw, dest)
    target = dest / "top.txt"
    before = target.stat().st_mtime_ns
    target.write_text("TOP\n")  # same size
    os.utime(target, ns=(before, before))
    assert sync(source, gw, dest).sent == []  # size and mtime match: trusted
    assert sync(source, gw, dest, checksum=True).sent == ["top.txt"]
    assert target.read_text() == "top\n"


def test_mode_change_is_applied_without_data(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    make_tree(source)
    sync(source, gw, dest)
    (source / "top.txt").chmod(0o600)
    assert sync(source, gw, dest).sent == []
    assert stat.S_IMODE((dest / "top.txt").stat().st_mode) == 0o600


def test_read_only_file_can_be_replaced(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    (source / "ro.txt").write_text("one")
    (source / "ro.txt").chmod(0o444)
    sync(source, gw, dest)
    (source / "ro.txt").chmod(0o644)
    (source / "ro.txt").write_text("two!")
    (source / "ro.txt").chmod(0o444)
    sync(source, gw, dest)
    assert (dest / "ro.txt").read_text() == "two!"
    assert not [p for p in dest.iterdir() if p.name.endswith(".xnet-tmp")]


# -- deletion ----------------------------------------------------------------------------


@pytest.mark.parametrize("delete", [True, False])
def test_deleted_source_file(gw: Gateway, tmp_path: Path, delete: bool) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    make_tree(source)
    sync(source, gw, dest)
    (source / "pkg" / "mod.py").unlink()
    (dest / "extra-dir" / "deep").mkdir(parents=True)
    (dest / "extra-dir" / "deep" / "f").write_text("x")
    sync(source, gw, dest, delete=delete)
    assert (dest / "pkg" / "mod.py").exists() is not delete
    assert (dest / "extra-dir").exists() is not delete
    if delete:
        assert snapshot(dest) == snapshot(source)


def test_type_changes_are_followed(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    (source / "a").mkdir()
    (source / "a" / "inner").write_text("1")
    (source / "b").write_text("file")
    sync(source, gw, dest)
    (source / "a" / "inner").unlink()
    (source / "a").rmdir()
    (source / "a").write_text("now a file")
    (source / "b").unlink()
    (source / "b").mkdir()
    sync(source, gw, dest)
    assert snapshot(dest) == snapshot(source)


# -- symlinks and special cases ----------------------------------------------------------


def test_symlinks(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    make_tree(source)
    (source / "rel-link").symlink_to("pkg/mod.py")
    (source / "pkg" / "abs-inside").symlink_to(source / "top.txt")
    (source / "abs-outside").symlink_to("/etc/hostname")
    (source / "dangling").symlink_to("does-not-exist")
    sync(source, gw, dest)
    assert os.readlink(dest / "rel-link") == "pkg/mod.py"
    assert os.readlink(dest / "pkg" / "abs-inside") == "../top.txt"  # points into the copy
    assert os.readlink(dest / "abs-outside") == "/etc/hostname"
    assert os.readlink(dest / "dangling") == "does-not-exist"
    assert (dest / "pkg" / "abs-inside").read_text() == "top\n"
    (source / "rel-link").unlink()
    (source / "rel-link").symlink_to("top.txt")
    sync(source, gw, dest)
    assert os.readlink(dest / "rel-link") == "top.txt"


def test_symlink_in_destination_is_replaced_not_followed(gw: Gateway, tmp_path: Path) -> None:
    source, dest, outside = tmp_path / "src", tmp_path / "dest", tmp_path / "outside"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "file").write_text("synced")
    outside.mkdir()
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    sync(source, gw, dest)
    assert not (dest / "sub").is_symlink()
    assert (dest / "sub" / "file").read_text() == "synced"
    assert list(outside.iterdir()) == []


def test_single_file_source(gw: Gateway, tmp_path: Path) -> None:
    source = tmp_path / "one.txt"
    source.write_text("single")
    dest = tmp_path / "out" / "copy.txt"
    sync(source, gw, dest)
    assert dest.read_text() == "single"


def test_big_file_travels_in_bounded_chunks(
    gw: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    data = os.urandom(1 << 20) * 20 + b"tail"  # 20 MiB and a bit
    (source / "big.bin").write_bytes(data)
    largest = [0]
    original = Channel.send

    def spy(self: Channel, item: Any) -> None:
        if isinstance(item, tuple) and item and item[0] == "chunk":
            largest[0] = max(largest[0], len(item[1]))
        original(self, item)

    monkeypatch.setattr(Channel, "send", spy)
    sync(source, gw, dest)
    assert 0 < largest[0] <= rsync_module.CHUNK_SIZE <= 1 << 20
    copied = (dest / "big.bin").read_bytes()
    assert hashlib.sha256(copied).digest() == hashlib.sha256(data).digest()


# -- API: filter, callbacks, several targets ----------------------------------------------


def test_filter_leaves_paths_out(gw: Gateway, tmp_path: Path) -> None:
    class NoPyc(RecordingRSync):
        def filter(self, path: str) -> bool:
            return not path.endswith(".pyc") and os.path.basename(path) != "skipme"

    source, dest = tmp_path / "src", tmp_path / "dest"
    (source / "skipme").mkdir(parents=True)
    (source / "skipme" / "inner.txt").write_text("no")
    (source / "a.py").write_text("a")
    (source / "a.pyc").write_bytes(b"compiled")
    rsync = NoPyc(source)
    rsync.add_target(gw, dest)
    rsync.send()
    assert sorted(p.name for p in dest.iterdir()) == ["a.py"]


def test_callbacks(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    (source / "a").write_bytes(b"a" * 100)
    (source / "b").write_bytes(b"b" * 10)
    calls: List[Tuple[str, int]] = []
    channels = set()
    finished = []

    def callback(kind: str, size: int, channel: Any) -> None:
        calls.append((kind, size))
        channels.add(channel)

    rsync = RSync(source, callback=callback, verbose=False)
    rsync.add_target(gw, dest, finishedcallback=lambda: finished.append(True))
    rsync.send()
    assert sorted(calls) == [("ack", 10), ("ack", 100), ("list", 110)]
    assert len(channels) == 1
    assert finished == [True]


def test_two_targets_in_one_send(gw: Gateway, gw2: Gateway, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    make_tree(source)
    (source / "big.bin").write_bytes(os.urandom(3 << 20))
    done: List[str] = []
    rsync = RecordingRSync(source)
    rsync.add_target(gw, tmp_path / "one", finishedcallback=lambda: done.append("one"))
    rsync.add_target(gw2, tmp_path / "two", finishedcallback=lambda: done.append("two"))
    rsync.add_target(gw2, tmp_path / "three", delete=True)
    rsync.send()
    for name in ("one", "two", "three"):
        assert snapshot(tmp_path / name) == snapshot(source)
    assert sorted(done) == ["one", "two"]


def test_send_without_targets(tmp_path: Path) -> None:
    rsync = RSync(tmp_path)
    with pytest.raises(OSError):
        rsync.send()
    rsync.send(raises=False)


def test_targets_are_used_once(gw: Gateway, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    rsync = sync(tmp_path / "src", gw, tmp_path / "dest")
    with pytest.raises(OSError):
        rsync.send()


def test_unknown_option(gw: Gateway, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="bogus"):
        RSync(tmp_path).add_target(gw, tmp_path / "d", bogus=True)


def test_verbose_reports_sent_files(gw: Gateway, tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.txt").write_text("x")
    rsync = RSync(tmp_path / "src")
    rsync.add_target(gw, tmp_path / "dest")
    rsync.send()
    assert "<= f.txt" in capsys.readouterr().out


# -- hostile peers -------------------------------------------------------------------------


def raw_worker(gw: Gateway, dest: Path) -> Any:
    channel = program.start(gw)
    channel.send(("rsync", rsync_tree.PROTOCOL, "push", str(dest), {}))
    return channel


ROOT = ("", "d", 0, 0, 0o755, None)


@pytest.mark.parametrize(
    "entries",
    [
        [ROOT, ("../evil", "f", 1, 0, 0o644, None)],
        [ROOT, ("a/../../evil", "f", 1, 0, 0o644, None)],
        [ROOT, ("/tmp/evil", "f", 1, 0, 0o644, None)],
        [ROOT, ("sub/evil", "f", 1, 0, 0o644, None)],  # parent never declared
        [ROOT, ("link", "l", 0, 0, 0, ".."), ("link/evil", "d", 0, 0, 0o755, None)],
        [ROOT, ("x", "q", 0, 0, 0, None)],
        [("../up", "d", 0, 0, 0o755, None)],
        [ROOT, ("a", "f", 1, 0, 0o644, None), ("a", "f", 1, 0, 0o644, None)],
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "no-parent", "through-link", "kind", "root", "dup"],
)
def test_worker_refuses_paths_that_escape(gw: Gateway, tmp_path: Path, entries: list) -> None:
    dest = tmp_path / "box" / "dest"
    dest.parent.mkdir()
    channel = raw_worker(gw, dest)
    channel.send(("entries", entries))
    channel.send(("end_entries", len(entries)))
    with pytest.raises(execnet_cli.RemoteError, match="RsyncProtocolError"):
        while True:
            channel.receive(10)
    assert sorted(p.name for p in (tmp_path / "box").iterdir()) in ([], ["dest"])
    assert not (tmp_path / "evil").exists() and not (tmp_path / "box" / "evil").exists()


def test_worker_refuses_data_it_did_not_ask_for(gw: Gateway, tmp_path: Path) -> None:
    channel = raw_worker(gw, tmp_path / "dest")
    channel.send(("entries", [ROOT]))
    channel.send(("end_entries", 1))
    assert channel.receive(10) == ("need_end", 0)
    channel.send(("batch", [(0, b"data")]))
    with pytest.raises(execnet_cli.RemoteError, match="not the next needed"):
        channel.waitclose(10)


FAKE_WORKER = """
while True:
    msg = channel.receive()
    if msg[0] == "end_entries":
        break
channel.send(("need", [WANTED], [], 99))
channel.send(("need_end", 1))
channel.receive()
"""


@pytest.mark.parametrize(
    "wanted",
    [(99, "new", None), (0, "new", None), ("../../etc/passwd", "new", None), (1, "copy", None)],
    ids=["beyond", "a-directory", "a-path", "how"],
)
def test_controller_refuses_requests_outside_the_manifest(
    gw: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wanted: tuple
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "real.txt").write_text("x")
    fake = FAKE_WORKER.replace("WANTED", repr(wanted))
    monkeypatch.setattr(program, "start", lambda gateway: Gateway.remote_exec(gateway, fake))
    rsync = RecordingRSync(source)
    rsync.add_target(gw, tmp_path / "dest")
    with pytest.raises(RSyncError, match="protocol error"):
        rsync.send()
    assert rsync.sent == []


def test_remote_failure_is_reported_with_its_path(gw: Gateway, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "f").write_text("x")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the destination's parent should be")
    rsync = RecordingRSync(source)
    rsync.add_target(gw, blocker / "dest")
    with pytest.raises(RSyncError, match=f"{blocker / 'dest'}: Not a directory"):
        rsync.send()
    rsync.add_target(gw, blocker / "dest")
    (result,) = rsync.send(check=False)
    assert result.ok and result.errors == ((str(blocker / "dest"), "Not a directory"),)


def test_check_relpath() -> None:
    assert rsync_tree.check_relpath("") == []
    assert rsync_tree.check_relpath("a/b.txt") == ["a", "b.txt"]
    for bad in ["..", "a/..", "./a", "a//b", "/a", "a/", "a\x00b", 3]:
        with pytest.raises(rsync_tree.RsyncProtocolError):
            rsync_tree.check_relpath(bad)


def test_rsync_error_is_in_the_error_tree():
    from execnet_cli.errors import RSyncError, XnetError
    from execnet_cli.rsync import RSyncError as FromRsync

    assert FromRsync is RSyncError
    assert issubclass(RSyncError, XnetError) and issubclass(RSyncError, OSError)
