"""Trees and snapshots shared by the rsync tests (test_rsync*.py, test_cli_rsync.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Dict, Tuple


def make_tree(root: Path) -> None:
    """Nested and empty directories, modes, a symlink, unicode names, a 0-byte file."""
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "top.txt").write_text("top\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "pkg" / "sub" / "data.bin").write_bytes(bytes(range(256)) * 10)
    (root / "naïve ✓.txt").write_text("unicode\n")
    (root / "link").symlink_to("pkg/mod.py")
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
                found[rel] = ("dir", st.st_mtime_ns, 0)
            else:
                found[rel] = ("file", (path.read_bytes(), st.st_mtime_ns), stat.S_IMODE(st.st_mode))
    return found
