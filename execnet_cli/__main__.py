"""``python -m execnet_cli`` and the ``xnet`` script (``pyproject.toml`` points it here)
run the command line under that name (usage lines and shell completion's
``_XNET_COMPLETE`` are the same either way).

The cyclic collector waits until the command line is imported (``cli.startup.settle``
turns it back on): its passes over the objects imports make, which all live as long as
the process, were ~4 % of ``xnet sh``'s instructions. When the command has ended, what
it made is frozen too: the interpreter's exit then skips its collections over paramiko's
and the run's objects (~4 % more). They are not freed one by one at exit, which only
objects in reference cycles would have needed (modules and what they alone hold still
are: their dictionaries are cleared as before, so an unclosed file is flushed then).
"""

import gc

gc.disable()

from .cli import main as command_line  # noqa: E402  (after the collector is off)


def main(prog_name: str = "xnet") -> None:
    """Run the command line; at its end (the ``SystemExit`` click raises), freeze."""
    try:
        command_line(prog_name=prog_name)
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
