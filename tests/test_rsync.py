"""RSync over real popen gateways: trees, changes, deletes, links, big files, hostile peers."""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from rsync_helpers import make_tree, snapshot

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


# -- whole trees --------------------------------------------------------------------------


def test_new_tree_is_copied_exactly(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    make_tree(source)
    rsync = sync(source, gw, dest)
    assert snapshot(dest) == snapshot(source)
    expected = [
        "naïve ✓.txt",
        "pkg/__init__.py",
        "pkg/mod.py",
        "pkg/sub/data.bin",
        "run.sh",
        "top.txt",
    ]
    assert sorted(rsync.sent) == expected
    assert (dest / "empty").is_dir() and not list((dest / "empty").iterdir())


def test_more_directories_than_the_fds_held_wide_and_deep(gw: Gateway, tmp_path: Path) -> None:
    from execnet_cli._remote.rsync_dirs import KEEP

    source, dest = tmp_path / "src", tmp_path / "dest"
    deep = source.joinpath(*[f"level{i}" for i in range(3 * KEEP)])
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_text("bottom")
    for i in range(3 * KEEP):
        (source / f"wide{i:02d}" / "inner").mkdir(parents=True)
        (source / f"wide{i:02d}" / "inner" / "f.txt").write_text(str(i))
    sync(source, gw, dest)
    assert snapshot(dest) == snapshot(source)
    for i in range(0, 3 * KEEP, 2):
        (source / f"wide{i:02d}" / "inner" / "f.txt").write_text("changed")
    (deep / "bottom.txt").unlink()
    (dest / "wide01" / "inner" / "extra").write_text("deleted")
    sync(source, gw, dest, delete=True)
    assert snapshot(dest) == snapshot(source)


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
    assert rsync.send(raises=False) is None  # as execnet's own tests expect


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
    channel.send(("entries", rsync_tree.pack_entries(entries)))
    channel.send(("end_entries", len(entries)))
    with pytest.raises(execnet_cli.RemoteError, match="RsyncProtocolError"):
        while True:
            channel.receive(10)
    assert sorted(p.name for p in (tmp_path / "box").iterdir()) in ([], ["dest"])
    assert not (tmp_path / "evil").exists() and not (tmp_path / "box" / "evil").exists()


def test_worker_refuses_data_it_did_not_ask_for(gw: Gateway, tmp_path: Path) -> None:
    channel = raw_worker(gw, tmp_path / "dest")
    channel.send(("entries", rsync_tree.pack_entries([ROOT])))
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
channel.send(("need", WANTED, [], 99))
channel.send(("need_end", 1))
channel.receive()
"""


@pytest.mark.parametrize(
    "wanted",
    [
        rsync_tree.pack_needs([(99, "new", None)]),
        rsync_tree.pack_needs([(0, "new", None)]),
        b"\x01\x00",
        struct.pack("<IB", 1, 3 | 8),
        [(1, "new", None)],
    ],
    ids=["beyond", "a-directory", "truncated", "how", "unpacked"],
)
def test_controller_refuses_requests_outside_the_manifest(
    gw: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wanted: object
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


# -- the rest of the tree: dir mtimes, names, edge files, excludes, dry runs -------------


def dir_mtimes(root: Path) -> Dict[str, int]:
    found = {"": root.stat().st_mtime_ns}
    for path in root.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            found[path.relative_to(root).as_posix()] = path.stat().st_mtime_ns
    return found


def test_directory_mtimes_unicode_names_and_empty_files_are_kept(
    gw: Gateway, tmp_path: Path
) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    (source / "deep" / "er" / "empty").mkdir(parents=True)
    (source / "déjà vu ✓").mkdir()
    (source / "déjà vu ✓" / "naïve файл.txt").write_text("unicode")
    (source / "zero").write_bytes(b"")
    (source / "deep" / "er" / "f").write_text("x")
    (source / "private").mkdir(mode=0o700)
    for i, path in enumerate(sorted(source.rglob("*"), reverse=True)):
        os.utime(path, ns=(10**18 + i, 10**18 + i), follow_symlinks=False)
    os.utime(source, ns=(10**18, 10**18))
    sync(source, gw, dest)
    assert snapshot(dest) == snapshot(source)
    assert dir_mtimes(dest) == dir_mtimes(source)
    assert (dest / "zero").read_bytes() == b""
    (source / "deep" / "er" / "f").write_text("changed")
    os.utime(source / "deep" / "er", ns=(10**17, 10**17))
    sync(source, gw, dest)
    assert dir_mtimes(dest) == dir_mtimes(source)


def test_single_file_onto_a_directory_is_an_error_naming_it(gw: Gateway, tmp_path: Path) -> None:
    source = tmp_path / "app.conf"
    source.write_text("setting = 1\n")
    dest = tmp_path / "dest" / "app.conf"
    (dest / "inner").mkdir(parents=True)
    (dest / "inner" / "keep.txt").write_text("precious tree")
    rsync = RecordingRSync(source)
    rsync.add_target(gw, dest, delete=True)
    with pytest.raises(RSyncError, match=f"cannot sync file {source} onto directory {dest}"):
        rsync.send()
    assert (dest / "inner" / "keep.txt").read_text() == "precious tree"


def test_directory_onto_a_file_is_an_error(gw: Gateway, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    dest = tmp_path / "dest"
    dest.write_text("a file")
    rsync = RecordingRSync(tmp_path / "src")
    rsync.add_target(gw, dest, delete=True)
    with pytest.raises(RSyncError, match="not a directory"):
        rsync.send()
    assert dest.read_text() == "a file"


def test_excludes_leave_out_and_protect_from_delete(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    (source / "build").mkdir(parents=True)
    (source / "build" / "out.o").write_text("o")
    (source / "pkg").mkdir()
    (source / "pkg" / "a.py").write_text("a")
    (source / "pkg" / "a.pyc").write_text("c")
    (source / "pkg" / "keep.pyc").write_text("k")
    (dest / "pkg").mkdir(parents=True)
    (dest / "pkg" / "local.pyc").write_text("remote's own cache")
    (dest / "build").mkdir()
    (dest / "build" / "remote-only").write_text("protected by /build")
    (dest / "stale.txt").write_text("not in the source: deleted")
    rsync = RecordingRSync(source, excludes=["*.pyc", "!keep.pyc", "/build"])
    rsync.add_target(gw, dest, delete=True)
    (result,) = rsync.send()
    assert sorted(rsync.sent) == ["pkg/a.py", "pkg/keep.pyc"]
    assert (dest / "pkg" / "local.pyc").read_text() == "remote's own cache"
    assert (dest / "build" / "remote-only").exists() and not (dest / "build" / "out.o").exists()
    assert not (dest / "stale.txt").exists()
    assert result.deleted == ("stale.txt",)


def test_dry_run_changes_nothing_and_lists_what_would(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    make_tree(source)
    sync(source, gw, dest)
    (source / "top.txt").write_text("new top, longer\n")
    (source / "newdir").mkdir()
    (source / "newdir" / "n.txt").write_text("n")
    (dest / "extra").write_text("would go")
    before = snapshot(dest)
    rsync = RecordingRSync(source)
    rsync.add_target(gw, dest, delete=True, dry_run=True)
    (result,) = rsync.send()
    assert snapshot(dest) == before
    assert not (dest / "newdir").exists()
    assert rsync.sent == []
    assert sorted(p for what, p in result.changes if what == "send") == ["newdir/n.txt", "top.txt"]
    assert ("make", "newdir") in result.changes
    assert result.deleted == ("extra",) and result.files == 2


def test_dry_run_with_checksum_lists_only_real_changes(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    make_tree(source)
    sync(source, gw, dest)
    os.utime(source / "top.txt", ns=(5, 5))  # same content, another mtime
    target = dest / "run.sh"
    mtime = target.stat().st_mtime_ns
    target.write_text("#!/bin/sh\necho HI\n")  # same size, same mtime, other content
    os.utime(target, ns=(mtime, mtime))
    rsync = RecordingRSync(source)
    rsync.add_target(gw, dest, dry_run=True, checksum=True)
    (result,) = rsync.send()
    assert [p for what, p in result.changes if what == "send"] == ["run.sh"]


def test_source_missing_raises(gw: Gateway, tmp_path: Path) -> None:
    rsync = RecordingRSync(tmp_path / "nothing-here")
    rsync.add_target(gw, tmp_path / "dest")
    with pytest.raises(FileNotFoundError):
        rsync.send()


def test_top_level_name(tmp_path: Path) -> None:
    assert execnet_cli.RSync is RSync
    assert "RSync" in execnet_cli.__all__


# -- many targets, one read ------------------------------------------------------------------


def bytes_read() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_each_file_is_read_once_for_all_targets(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "d").mkdir(parents=True)
    for i in range(40):
        (source / "d" / f"small{i}").write_bytes(os.urandom(20_000))
    (source / "big.bin").write_bytes(os.urandom(6 << 20))
    total = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    group = execnet_cli.Group(["popen"] * 4)
    try:
        rsync = RecordingRSync(source)
        for i, gateway in enumerate(group):
            rsync.add_target(gateway, tmp_path / f"dest{i}")
        before = bytes_read()
        results = rsync.send()
        read = bytes_read() - before
    finally:
        group.terminate(10)
    assert all(r.files == 41 for r in results)
    for i in range(4):
        assert snapshot(tmp_path / f"dest{i}") == snapshot(source)
    assert total <= read < 1.5 * total  # once, plus the acks and a little: not four times


# -- block deltas through a gateway ------------------------------------------------------------


def test_append_to_a_big_file_travels_as_a_delta(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    big = source / "big.bin"
    big.write_bytes(os.urandom(24 << 20))
    sync(source, gw, dest, delta=True)
    with big.open("ab") as out:
        out.write(os.urandom(1 << 20))
    rsync = RecordingRSync(source)
    rsync.add_target(gw, dest, delta=True)
    (result,) = rsync.send()
    assert rsync.sent == ["big.bin"]
    assert (dest / "big.bin").read_bytes() == big.read_bytes()
    assert result.literal == 1 << 20
    assert result.matched == 24 << 20
    assert (1 << 20) < result.wire_bytes < (1 << 20) * 1.1
    assert result.file_bytes == 25 << 20


def test_a_3_mib_insertion_in_a_40_mib_file_puts_3_mib_on_the_wire(
    gw: Gateway, tmp_path: Path
) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    big = source / "big.bin"
    old = os.urandom(40 << 20)
    big.write_bytes(old)
    sync(source, gw, dest, delta=True)
    inserted = os.urandom(3 << 20)
    big.write_bytes(old[:20_000_017] + inserted + old[20_000_017:])
    rsync = RecordingRSync(source)
    rsync.add_target(gw, dest, delta=True)
    (result,) = rsync.send()
    assert (dest / "big.bin").read_bytes() == big.read_bytes()
    assert result.literal < len(inserted) + (256 << 10)  # not the 20 MB after it
    assert result.wire_bytes < len(inserted) * 1.1


def test_delta_of_an_unchanged_big_file_with_a_new_mtime_sends_nothing(
    gw: Gateway, tmp_path: Path
) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(3 << 20))
    sync(source, gw, dest, delta=True)
    os.utime(source / "big.bin", ns=(7, 7))
    inode = (dest / "big.bin").stat().st_ino
    rsync = RecordingRSync(source)
    rsync.add_target(gw, dest, delta=True)
    (result,) = rsync.send()
    assert rsync.sent == [] and result.literal == 0
    assert (dest / "big.bin").stat().st_mtime_ns == 7
    assert (dest / "big.bin").stat().st_ino == inode  # not rewritten


def test_special_files_are_skipped_and_reported(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    os.mkfifo(source / "pipe")
    (source / "f").write_text("x")
    rsync = RecordingRSync(source)
    rsync.add_target(gw, dest)
    (result,) = rsync.send()
    assert rsync.sent == ["f"] and not (dest / "pipe").exists()
    assert result.skipped == (("pipe", "not a file, directory or symlink"),)


def test_one_delta_for_targets_with_the_same_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from execnet_cli._remote import rsync_send

    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(2 << 20))
    built = []
    original = rsync_send.Matcher

    def counting(*args: Any) -> Any:
        built.append(args[0])
        return original(*args)

    monkeypatch.setattr(rsync_send, "Matcher", counting)
    group = execnet_cli.Group(["popen"] * 3)
    try:
        for i, gateway in enumerate(group):
            sync(source, gateway, tmp_path / f"dest{i}")
        with (source / "big.bin").open("ab") as out:
            out.write(b"more")
        rsync = RecordingRSync(source)
        for i, gateway in enumerate(group):
            rsync.add_target(gateway, tmp_path / f"dest{i}", delta=True)
        results = rsync.send()
    finally:
        group.terminate(10)
    assert len(built) == 1
    assert [r.literal for r in results] == [4, 4, 4]
    for i in range(3):
        assert (tmp_path / f"dest{i}" / "big.bin").read_bytes() == (source / "big.bin").read_bytes()


def test_a_name_that_is_not_utf8_is_skipped_and_reported(gw: Gateway, tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    (source / "ok.txt").write_text("fine")
    odd = os.fsencode(str(source)) + b"/bad-\xff-name"
    with open(odd, "wb") as out:
        out.write(b"latin-1 name")
    rsync = RecordingRSync(source)
    rsync.add_target(gw, dest)
    (result,) = rsync.send()
    assert rsync.sent == ["ok.txt"]
    assert [why for _, why in result.skipped] == ["its name is not valid UTF-8"]
