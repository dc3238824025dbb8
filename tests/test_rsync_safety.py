"""The audit's safety cases, over real gateways: temporaries, swapped sources, leftovers.

Each test here failed on the engine before the fix: a symlink planted at the predictable
temporary name made the sync write outside the destination; a source swapped for a link
(or another file) after the scan sent the link's target; a killed worker's temporary
stayed for good.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Any, List

import pytest

import execnet_cli
from execnet_cli import rsync as rsync_module
from execnet_cli._remote import rsync_tree
from execnet_cli.gateway import Gateway
from execnet_cli.rsync import RSync

TEMP_SUFFIX = ".xnet-tmp"


def temporaries(root: Path) -> List[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


def worker_pid(gw: Gateway) -> int:
    return int(gw.remote_exec("import os; channel.send(os.getpid())").receive(10))


class Quiet(RSync):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("verbose", False)
        super().__init__(*args, **kwargs)


def test_planted_link_at_the_old_temporary_name_is_not_followed(
    gw: Gateway, tmp_path: Path
) -> None:
    source, dest, outside = tmp_path / "src", tmp_path / "dest", tmp_path / "victim"
    source.mkdir()
    dest.mkdir()
    (source / "f.txt").write_text("payload")
    outside.write_text("precious")
    outside.chmod(0o600)
    pid = worker_pid(gw)
    (dest / f".f.txt.{pid}{TEMP_SUFFIX}").symlink_to(outside)
    rsync = Quiet(source)
    rsync.add_target(gw, dest)
    rsync.send()
    assert outside.read_text() == "precious"
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600
    assert (dest / "f.txt").read_text() == "payload"
    assert not (dest / "f.txt").is_symlink()


def test_temporary_is_created_exclusively_never_through_a_link(tmp_path: Path) -> None:
    """The remote half's own function, run here: a name taken (even by a link) is skipped."""
    outside = tmp_path / "victim"
    outside.write_text("precious")
    names = iter(["taken", "taken", "free"])
    (tmp_path / f".f.taken{TEMP_SUFFIX}").symlink_to(outside)
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd, name = rsync_tree.create_temp(dir_fd, "f", token=lambda: next(names))
        os.write(fd, b"x")
        os.close(fd)
    finally:
        os.close(dir_fd)
    assert name == f".f.free{TEMP_SUFFIX}"
    assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert outside.read_text() == "precious"


class SwapAfterScan(Quiet):
    """Replaces ``victim`` (already scanned) when the scan reaches the last name."""

    def __init__(self, source: Path, swap: Any) -> None:
        super().__init__(source)
        self.swap = swap

    def filter(self, path: str) -> bool:
        if os.path.basename(path) == "zzz-last":
            self.swap()
        return True


@pytest.mark.parametrize("how", ["symlink", "hardlink", "fifo"])
def test_source_swapped_after_the_scan_is_not_sent(gw: Gateway, tmp_path: Path, how: str) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("the secret")
    secret.chmod(0o600)
    victim = source / "a-victim.txt"
    victim.write_text("public text")
    (source / "zzz-last").write_text("last")

    def swap() -> None:
        victim.unlink()
        if how == "symlink":
            victim.symlink_to(secret)
        elif how == "hardlink":
            os.link(secret, victim)
        else:
            os.mkfifo(victim)

    rsync = SwapAfterScan(source, swap)
    rsync.add_target(gw, dest)
    rsync.send()
    copied = dest / "a-victim.txt"
    assert not copied.exists() or "secret" not in copied.read_text()
    assert (dest / "zzz-last").read_text() == "last"
    assert [relpath for relpath, _ in rsync.skipped] == ["a-victim.txt"]
    assert "changed since it was scanned" in rsync.skipped[0][1]


def test_stale_temporaries_of_ours_are_removed_by_the_next_sync(
    gw: Gateway, tmp_path: Path
) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "f").write_text("new")
    (dest / "sub").mkdir(parents=True)
    stale = [dest / "sub" / f".f.4242{TEMP_SUFFIX}", dest / "sub" / f".f.0123456789ab{TEMP_SUFFIX}"]
    for path in stale:
        path.write_bytes(b"half")
    kept = [dest / "sub" / "user.xnet-tmp", dest / "sub" / ".f.not-ours.xnet-tmp.bak"]
    for path in kept:
        path.write_bytes(b"mine")
    unsynced = tmp_path / "elsewhere"
    unsynced.mkdir()
    (unsynced / f".g.4242{TEMP_SUFFIX}").write_bytes(b"not in a synced dir")
    rsync = Quiet(source)
    rsync.add_target(gw, dest)
    rsync.send()
    assert not any(p.exists() for p in stale)
    assert all(p.read_bytes() == b"mine" for p in kept)
    assert (unsynced / f".g.4242{TEMP_SUFFIX}").exists()


def big_source(root: Path, mib: int) -> Path:
    root.mkdir()
    block = os.urandom(1 << 20)
    with (root / "big.bin").open("wb") as out:
        for i in range(mib):
            out.write(block[i:] + block[:i])
    return root / "big.bin"


@pytest.mark.parametrize("old_version", [False, True], ids=["fresh", "over-old"])
def test_interrupted_sync_leaves_no_half_file_and_a_rerun_cleans_up(
    tmp_path: Path, old_version: bool
) -> None:
    source, dest = tmp_path / "src", tmp_path / "dest"
    big = big_source(source, 96)
    dest.mkdir()
    if old_version:
        (dest / "big.bin").write_bytes(b"old complete version")
    gw = execnet_cli.makegateway("popen")
    try:
        pid = worker_pid(gw)
        errors: List[BaseException] = []

        def run() -> None:
            rsync = Quiet(source)
            rsync.add_target(gw, dest)
            try:
                rsync.send()
            except BaseException as exc:  # the worker is killed under it
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and thread.is_alive():
            found = temporaries(dest)
            if found and any(p.stat().st_size > (4 << 20) for p in found if p.exists()):
                os.kill(pid, signal.SIGKILL)
                break
        thread.join(30)
        assert errors, "the sync finished before the worker could be killed"
    finally:
        gw.exit()
    assert temporaries(dest), "the killed worker's temporary is the case under test"
    if old_version:
        assert (dest / "big.bin").read_bytes() == b"old complete version"
    else:
        assert not (dest / "big.bin").exists()
    gw = execnet_cli.makegateway("popen")
    try:
        rsync = Quiet(source)
        rsync.add_target(gw, dest)
        rsync.send()
    finally:
        gw.exit()
    assert temporaries(dest) == []
    assert (dest / "big.bin").stat().st_size == big.stat().st_size
    assert (dest / "big.bin").read_bytes() == big.read_bytes()


# -- a directory swapped for a link in the middle of a sync ------------------------------------


def swap_for_link(directory: Path, target: Path) -> None:
    """What a local attacker does: move the directory away, leave a link in its place."""
    directory.rename(directory.with_name(directory.name + "-moved"))
    directory.symlink_to(target, target_is_directory=True)


def outside_dir(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    (outside / "deeper").mkdir(parents=True)
    (outside / "precious.txt").write_text("precious")
    (outside / "deeper").chmod(0o750)
    os.utime(outside / "deeper", ns=(7, 7))
    return outside


def assert_untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.rglob("*")) == ["deeper", "precious.txt"]
    assert (outside / "precious.txt").read_text() == "precious"
    deeper = (outside / "deeper").stat()
    assert (stat.S_IMODE(deeper.st_mode), deeper.st_mtime_ns) == (0o750, 7)


class SwapBeforeData(Quiet):
    """Swaps the destination's ``sub`` for a link once the receiver has made it, just
    before the first file's data goes out."""

    def __init__(self, source: Path, swap: Any) -> None:
        super().__init__(source)
        self.swap = swap

    def _report_send_file(self, gateway: Any, modified_rel_path: str) -> None:
        if self.swap is not None:
            self.swap()
            self.swap = None


def nested_source(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    (source / "sub" / "deeper").mkdir(parents=True)
    (source / "sub" / "a.txt").write_text("a")
    (source / "sub" / "deeper" / "g.txt").write_text("g")
    os.utime(source / "sub" / "deeper", ns=(5, 5))
    return source


def test_destination_dir_swapped_for_a_link_before_the_data_is_not_written_through(
    gw: Gateway, tmp_path: Path
) -> None:
    source, dest = nested_source(tmp_path), tmp_path / "dest"
    outside = outside_dir(tmp_path)
    rsync = SwapBeforeData(source, lambda: swap_for_link(dest / "sub", outside))
    rsync.add_target(gw, dest)
    rsync.send(check=False)
    assert_untouched(outside)


def test_destination_dir_swapped_for_a_link_before_delete_is_not_cleaned_through(
    gw: Gateway, tmp_path: Path
) -> None:
    """A pull (the receiver runs here): ``sub`` becomes a link just before the deletes."""
    source, dest = nested_source(tmp_path), tmp_path / "dest"
    outside = outside_dir(tmp_path)
    (dest / "sub").mkdir(parents=True)

    def ready(receiver: Any) -> None:
        delete_extras = receiver.delete_extras

        def swapped() -> None:
            swap_for_link(dest / "sub", outside)
            delete_extras()

        receiver.delete_extras = swapped

    rsync_module.pull(gw, str(source), str(dest), delete=True, receiver_ready=ready)
    assert_untouched(outside)


def test_source_dir_swapped_for_a_link_after_its_listing_is_not_followed(
    gw: Gateway, tmp_path: Path
) -> None:
    source, dest = nested_source(tmp_path), tmp_path / "dest"
    (source / "zzz-last").write_text("last")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "key").write_text("the secret")
    rsync = SwapAfterScan(source, lambda: swap_for_link(source / "sub", secrets))
    rsync.add_target(gw, dest)
    rsync.send(check=False)
    assert not any("secret" in p.read_text() for p in dest.rglob("*") if p.is_file())
    assert (dest / "zzz-last").read_text() == "last"
