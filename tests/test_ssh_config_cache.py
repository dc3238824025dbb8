"""Every host of a run asks for the ssh config: it is read once, and again only when one
of the files it came from (or an Include directory) changed."""

from __future__ import annotations

import os
from pathlib import Path

from execnet_cli.transports.ssh.config import load_config_text


def _touch(path: Path, step: int) -> None:
    """A new mtime, whatever the file system's clock granularity."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + step * 1_000_000_000))


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    main = tmp_path / "config"
    main.write_text("Host a\n  Port 1\n")
    assert load_config_text(str(main)) == "Host a\n  Port 1"
    main.write_text("Host a\n  Port 2\n")
    _touch(main, 1)
    assert load_config_text(str(main)) == "Host a\n  Port 2"


def test_an_included_file_and_a_new_one_are_seen(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    main = tmp_path / "config"
    main.write_text("Include conf.d/*.conf\n")
    first = tmp_path / "conf.d" / "a.conf"
    first.write_text("Host a\n")
    assert load_config_text(str(main)) == "Host a"
    first.write_text("Host b\n")
    _touch(first, 1)
    assert load_config_text(str(main)) == "Host b"
    (tmp_path / "conf.d" / "c.conf").write_text("Host c\n")
    _touch(tmp_path / "conf.d", 2)
    assert load_config_text(str(main)) == "Host b\nHost c"


def test_the_same_files_are_not_read_again(tmp_path: Path) -> None:
    main = tmp_path / "config"
    main.write_text("Host a\n")
    stat = main.stat()
    assert load_config_text(str(main)) == "Host a"
    main.write_text("Host z\n")  # the same size and mtime: taken as unchanged
    os.utime(main, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert load_config_text(str(main)) == "Host a"
