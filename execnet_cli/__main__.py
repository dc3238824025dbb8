"""``python -m execnet_cli`` and the ``xnet`` script (``pyproject.toml`` points it here)
run the command line under that name (usage lines and shell completion's
``_XNET_COMPLETE`` are the same either way).

The cyclic collector waits until the command line is imported (``cli.startup.settle``
turns it back on): its passes over the objects imports make, which all live as long as
the process, were ~4 % of ``xnet sh``'s instructions.
"""

import gc

gc.disable()

from .cli import main  # noqa: E402  (after the collector is off)

if __name__ == "__main__":
    main(prog_name="xnet")
