"""A package that exists only in a temporary directory on the controller, for the import
forwarding tests (tests/test_imports*.py, tests/test_cli_imports.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Dict

#: The interpreter the workers run: not ours, so it has neither execnet_cli's
#: environment nor the package below.
SYSTEM_PYTHON = "/usr/bin/python3"

FILES: Dict[str, str] = {
    "ctrlonly/__init__.py": "VERSION = '1.0'\n",
    "ctrlonly/tasks.py": """\
        from . import helpers
        from .sub import deep


        def deploy():
            print("deploying", helpers.NAME)
            return {"deep": deep.twice(21), "version": helpers.version()}


        def data():
            from importlib.resources import files

            return files("ctrlonly").joinpath("data/greeting.txt").read_text()


        def raising():
            raise ValueError("deploy failed on purpose")


        if __name__ == "__main__":
            print("tasks as __main__")
        """,
    "ctrlonly/helpers.py": """\
        NAME = "helpers"


        def version():
            from . import VERSION

            return VERSION
        """,
    "ctrlonly/sub/__init__.py": "",
    "ctrlonly/sub/deep.py": "def twice(x):\n    return 2 * x\n",
    "ctrlonly/data/greeting.txt": "hello from the controller\n",
    "ctrlonly/broken.py": "raise RuntimeError('broken at import')\n",
    "ctrlonly/.secret": "not for workers\n",
}


def make_package(root: Path) -> Path:
    """Write the ``ctrlonly`` package under ``root``; return ``root``."""
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root
