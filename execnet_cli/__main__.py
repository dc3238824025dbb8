"""``python -m execnet_cli`` runs the ``xnet`` command line."""

from .cli import main

if __name__ == "__main__":
    main()
