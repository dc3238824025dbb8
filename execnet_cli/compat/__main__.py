"""``python -m execnet_cli.compat``: print the directory to put first on ``PYTHONPATH``."""

from __future__ import annotations

from . import alias_dir

if __name__ == "__main__":
    print(alias_dir())
