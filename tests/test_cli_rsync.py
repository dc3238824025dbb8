"""``xnet rsync`` through click's CliRunner, on real popen workers (one directory each)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner, Result
from proc_helpers import wait_until
from rsync_helpers import make_tree, snapshot

from execnet_cli.cli import main
from execnet_cli.cli.rsync import parse_arguments, remote_path

HOSTS = ("local1", "local2", "local3")
INVENTORY = """\
groups:
  local:
    hosts: local[1-3]
    vars: {{transport: popen}}
hosts:
  local1: {{chdir: {root}/local1}}
  local2: {{chdir: {root}/local2}}
  local3: {{chdir: {root}/local3}}
  bad: {{transport: popen, python: /nonexistent/python}}
"""


@pytest.fixture
def lab(env: Path) -> Path:
    """Three local hosts, each working in its own directory under ``env``; a source tree."""
    (env / "inv.yaml").write_text(INVENTORY.format(root=env))
    for host in HOSTS:
        (env / host).mkdir()
    (env / "src").mkdir()
    make_tree(env / "src")
    return env


def xnet(lab: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["rsync", "-i", str(lab / "inv.yaml"), *args])


def test_push_to_three_hosts_then_nothing_to_do(lab: Path) -> None:
    result = xnet(lab, "src", "local:site")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("local[1-3] (3) ---")
    assert lines[1].startswith("6 files (")
    assert "on the wire" in lines[1]
    assert result.stderr.startswith("3 ok, 0 failed, 0 unreachable in ")
    for host in HOSTS:
        assert snapshot(lab / host / "site") == snapshot(lab / "src")
    again = xnet(lab, "src", "local:site")
    assert again.exit_code == 0
    assert again.stdout.splitlines()[1].startswith("up to date")


def test_dir_hosts_form_lands_at_the_same_path(lab: Path) -> None:
    result = xnet(lab, "src", "local2")
    assert result.exit_code == 0, result.output
    assert snapshot(lab / "local2" / "src") == snapshot(lab / "src")  # relative: under chdir
    result = xnet(lab, "src", "local2", "--dest", "elsewhere")
    assert result.exit_code == 0, result.output
    assert (lab / "local2" / "elsewhere" / "top.txt").exists()


def test_the_source_itself_is_refused(lab: Path) -> None:
    result = xnet(lab, str(lab / "src"), "local1")  # absolute: the same path, same machine
    assert result.exit_code == 1
    assert "is the source itself" in result.stdout
    assert snapshot(lab / "src")  # untouched


def test_trailing_slash_puts_the_source_inside(lab: Path) -> None:
    result = xnet(lab, "src/top.txt", "local1:conf/")
    assert result.exit_code == 0, result.output
    assert (lab / "local1" / "conf" / "top.txt").read_text() == "top\n"


def test_pull_from_three_hosts_into_dest_per_host(lab: Path) -> None:
    for host in HOSTS:
        (lab / host / "logs").mkdir()
        (lab / host / "logs" / "app.log").write_text(f"log of {host}\n")
    result = xnet(lab, "local:logs", "pulled")
    assert result.exit_code == 0, result.output
    for host in HOSTS:
        assert (lab / "pulled" / host / "app.log").read_text() == f"log of {host}\n"
    assert "local[1-3] (3) ---" in result.stdout  # same counts: folded
    assert "1 file (14 B) received" in result.stdout  # not "sent": a pull receives
    single = xnet(lab, "local1:logs/app.log", "one")
    assert single.exit_code == 0, single.output
    assert (lab / "one" / "local1" / "app.log").read_text() == "log of local1\n"


def test_json_is_one_object_per_host(lab: Path) -> None:
    result = xnet(lab, "--json", "src", "local:site")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["name"] for r in records) == list(HOSTS)
    for record in records:
        assert record["status"] == "ok" and record["files"] == 6 and record["errors"] == []
        assert record["wire_bytes"] >= record["literal_bytes"] > 0
        assert record["dest"] == "site"


def test_dry_run_lists_and_changes_nothing(lab: Path) -> None:
    assert xnet(lab, "src", "local:site").exit_code == 0
    (lab / "src" / "top.txt").write_text("changed top\n")
    (lab / "local2" / "site" / "extra.txt").write_text("only on local2")
    before = {host: snapshot(lab / host) for host in HOSTS}
    result = xnet(lab, "--dry-run", "--delete", "src", "local:site")
    assert result.exit_code == 0, result.output
    assert {host: snapshot(lab / host) for host in HOSTS} == before
    out = result.stdout
    assert "local[1,3] (2) ---" in out and "local2 (1) ---" in out
    assert out.count("would send top.txt") == 2
    assert "would delete extra.txt" in out
    assert "dry run: 1 file (12 B) to send, 1 to delete" in out


def test_delete_keeps_what_excludes_protect(lab: Path) -> None:
    (lab / "src" / "cache.pyc").write_text("compiled")
    assert xnet(lab, "src", "local:site").exit_code == 0
    for host in HOSTS:
        (lab / host / "site" / "local.pyc").write_text("the host's own")
        (lab / host / "site" / "gone.txt").write_text("delete me")
    patterns = lab / "excludes"
    patterns.write_text("# compiled files\n*.pyc\n")
    result = xnet(lab, "--delete", "--exclude-from", str(patterns), "src", "local:site")
    assert result.exit_code == 0, result.output
    for host in HOSTS:
        assert (lab / host / "site" / "local.pyc").exists()
        assert not (lab / host / "site" / "gone.txt").exists()
    assert "1 deleted" in result.stdout


def test_repeated_excludes_are_gitignore_globs(lab: Path) -> None:
    (lab / "src" / "pkg" / "mod.pyc").write_text("compiled, any depth")
    (lab / "src" / "build").mkdir()
    (lab / "src" / "build" / "out.o").write_text("top-level build")
    (lab / "src" / "pkg" / "build").mkdir()
    (lab / "src" / "pkg" / "build" / "keep.txt").write_text("not the top-level build")
    args = ["--exclude", "*.pyc", "--exclude", "/build", "--exclude", "*.sh"]
    result = xnet(lab, *args, "src", "local1:site")
    assert result.exit_code == 0, result.output
    site = lab / "local1" / "site"
    assert not (site / "pkg" / "mod.pyc").exists() and not (site / "build").exists()
    assert not (site / "run.sh").exists()
    assert (site / "pkg" / "build" / "keep.txt").exists() and (site / "top.txt").exists()


def test_checksum_catches_a_same_size_same_mtime_edit(lab: Path) -> None:
    assert xnet(lab, "src", "local1:site").exit_code == 0
    copy = lab / "local1" / "site" / "top.txt"
    mtime = copy.stat().st_mtime_ns
    copy.write_text("TOP\n")
    os.utime(copy, ns=(mtime, mtime))
    assert xnet(lab, "src", "local1:site").stdout.splitlines()[1].startswith("up to date")
    assert copy.read_text() == "TOP\n"
    result = xnet(lab, "--checksum", "src", "local1:site")
    assert result.exit_code == 0 and "1 file (" in result.stdout
    assert copy.read_text() == "top\n"


@pytest.fixture
def read_only(lab: Path) -> Iterator[Path]:
    """local2's destination, made unwritable (immutable for root, mode 0555 otherwise)."""
    target = lab / "local2" / "site"
    target.mkdir()
    if os.geteuid() == 0:
        if not shutil.which("chattr"):
            pytest.skip("root needs chattr to make a directory unwritable")
        done = subprocess.run(["chattr", "+i", str(target)], capture_output=True)
        if done.returncode:
            pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")
    else:
        target.chmod(0o555)
    yield target
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(target)], check=True)
    else:
        target.chmod(0o755)


def test_read_only_destination_on_one_host_while_the_others_sync(
    lab: Path, read_only: Path
) -> None:
    result = xnet(lab, "src", "local:site")
    assert result.exit_code == 1, result.output
    assert "local[1,3] (2) ---" in result.stdout
    assert "local2 (1): failed ---" in result.stdout
    assert f"error: {read_only}/top.txt: " in result.stdout
    assert "1 failed (local2)" in result.stderr
    for host in ("local1", "local3"):
        assert snapshot(lab / host / "site") == snapshot(lab / "src")
    assert list(read_only.iterdir()) == []


def test_a_destination_that_cannot_be_made_is_not_up_to_date(lab: Path) -> None:
    (lab / "local1" / "afile").write_text("a file, not a directory")
    result = xnet(lab, "src", "local1:afile/site")
    assert result.exit_code == 1, result.output
    assert "local1 (1): failed ---" in result.stdout
    assert "nothing sent (" in result.stdout and "up to date" not in result.stdout
    assert "1 path not synced" in result.stdout
    assert f"{lab / 'local1' / 'afile' / 'site'}: " in result.stdout


def test_unreachable_host_while_others_sync(lab: Path) -> None:
    result = xnet(lab, "src", "local1,bad:site")
    assert result.exit_code == 3, result.output
    assert "1 unreachable (bad)" in result.stderr
    assert (lab / "local1" / "site" / "top.txt").exists()


def test_single_file_onto_a_directory_names_both(lab: Path) -> None:
    (lab / "local1" / "top.txt" / "inner").mkdir(parents=True)
    result = xnet(lab, "src/top.txt", "local1:top.txt")
    assert result.exit_code == 1
    assert "cannot sync file src/top.txt onto directory " in result.stdout
    assert (lab / "local1" / "top.txt" / "inner").is_dir()


def test_verbose_shows_files_as_they_go(lab: Path) -> None:
    result = xnet(lab, "-v", "src", "local:site")
    assert result.exit_code == 0, result.output
    assert "local[1-3]: top.txt" in result.stdout.splitlines()


@pytest.mark.parametrize(
    "args, message",
    [
        (["nothere", "local:site"], "nothere: no such file or directory"),
        (["local1:a", "local2:b"], "one side must be local"),
        (["src", "local1:site", "--dest", "x"], "--dest goes with the DIR HOSTS form"),
        (["--exclude-from", "/nonexistent", "src", "local1"], "cannot read /nonexistent"),
        (["src", "nohost:site"], "unknown host or group 'nohost'"),
    ],
)
def test_usage_errors(lab: Path, args: list, message: str) -> None:
    result = xnet(lab, *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_argument_forms(env: Path) -> None:
    assert parse_arguments("dir", "web").pattern == "web"
    assert parse_arguments("dir", "web").remote is None
    push = parse_arguments("dir", "web&prod:/srv/app")
    assert (push.pull, push.pattern, push.remote) == (False, "web&prod", "/srv/app")
    pull = parse_arguments("web[01-03]:/var/log", "logs")
    assert (pull.pull, pull.pattern, pull.local) == (True, "web[01-03]", "logs")
    ansible = parse_arguments("dir", "web:&prod")  # Ansible's colon syntax: all pattern
    assert (ansible.pattern, ansible.remote) == ("web:&prod", None)
    (env / "a:b").mkdir()
    assert parse_arguments("a:b", "web").local == "a:b"  # an existing local path


def test_remote_paths_and_deltas_per_host() -> None:
    from execnet_cli.cli.rsync import _places
    from execnet_cli.inventory import Host

    popen = Host("p", transport="popen")
    worker = Host("w", transport="popen", chdir="/work")
    far = Host("far", transport="ssh")
    assert remote_path(popen, "site") == "~/site"  # relative: the remote home
    assert remote_path(worker, "site") == "site"  # relative to its chdir
    assert remote_path(far, "/srv/site") == "/srv/site"
    push = parse_arguments("src", "x:site")
    assert [p.delta for p in _places(push, [popen, far], None, False)] == [False, True]
    assert [p.delta for p in _places(push, [popen, far], None, True)] == [False, False]


def test_fanout_one_still_syncs_every_host(lab: Path) -> None:
    result = xnet(lab, "-f", "1", "src", "local:site")
    assert result.exit_code == 0, result.output
    for host in HOSTS:
        assert snapshot(lab / host / "site") == snapshot(lab / "src")


def test_timeout_fails_a_slow_host_and_leaves_no_temporary(lab: Path) -> None:
    with (lab / "src" / "big.bin").open("wb") as out:
        for _ in range(64):
            out.write(os.urandom(1 << 20))
    result = xnet(lab, "-t", "0.05", "src", "local1:site")
    assert result.exit_code == 4, result.output
    assert "local1 (1): timed out ---" in result.stdout
    assert "1 timed out (local1)" in result.stderr
    leftovers = [p for p in (lab / "local1").rglob("*") if p.name.endswith(".xnet-tmp")]
    assert leftovers == [] or wait_gone(leftovers)


def wait_gone(paths: list) -> bool:
    """The worker removes its temporary as it ends, just after we report."""
    return wait_until(lambda: not any(p.exists() for p in paths), timeout=10)


def test_progress_table_renders() -> None:
    import io

    from rich.console import Console

    from execnet_cli._remote.rsync_send import Target
    from execnet_cli.cli.rsync import progress_table

    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(progress_table({}))
    target = Target(channel=None, name="web01")
    target.files_total, target.files_done = 10, 4
    target.bytes_total, target.bytes_done = 4_000_000, 1_500_000
    done = Target(channel=None, name="web02")
    done.files_total = done.files_done = 10
    done.bytes_total = done.bytes_done = 4_000_000
    done.finished, done.duration = True, 2.0
    since = time.monotonic() - 100  # long finished: its rate is the one it ended with
    console.print(progress_table({"web01": (target, time.monotonic() - 1), "web02": (done, since)}))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "connecting" in text
    assert "web01" in text and "4/10" in text and "1.5 MB/4.0 MB" in text
    assert "2.0 MB/s" in text.splitlines()[-1]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_sync_and_reports_every_host(
    lab: Path, signum: int, status: int
) -> None:
    with (lab / "src" / "big.bin").open("wb") as out:
        block = os.urandom(1 << 20)
        for _ in range(400):
            out.write(block)
    command = [sys.executable, "-m", "execnet_cli", "rsync", "-i", str(lab / "inv.yaml")]
    proc = subprocess.Popen(
        [*command, "src", "local:site"],
        cwd=lab,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: temporaries(lab), 60), "the sync never started writing"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == status, err
    assert "interrupted" in out and "Traceback" not in err
    assert f"xnet: stopped by {signal.Signals(signum).name}" in err
    assert wait_until(lambda: not temporaries(lab), 10)  # every worker removed its own
    for host in HOSTS:
        assert not (lab / host / "site" / "big.bin").exists()  # never half a file


def temporaries(root: Path) -> list:
    return [p for p in root.rglob("*.xnet-tmp") if p.is_file()]


def test_a_pattern_selecting_no_host_is_status_5(lab: Path) -> None:
    result = xnet(lab, "src", "local&bad:site")
    assert result.exit_code == 5, result.output
    assert not any((lab / host / "site").exists() for host in HOSTS)


def test_dry_run_of_a_synced_tree_says_up_to_date(lab: Path) -> None:
    assert xnet(lab, "src", "local1:site").exit_code == 0
    result = xnet(lab, "--dry-run", "src", "local1:site")
    assert result.exit_code == 0 and result.stdout.splitlines()[1] == "dry run: up to date"
