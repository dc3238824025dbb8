"""``python -m execnet_cli`` runs the ``xnet`` command line, under that name (its usage
lines, and shell completion's ``_XNET_COMPLETE``, are the same either way)."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="xnet")
