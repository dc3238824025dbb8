"""Loggers that import ``logging`` only when a message is actually logged.

``logging`` costs a worker several milliseconds at start-up, and a worker logs
almost never; the controller has it loaded anyway.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs a worker milliseconds; annotations are strings
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any


class LazyLogger:
    """Stands in for ``logging.getLogger(name)`` until first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:
        logger = self._logger
        if logger is None:
            import logging

            logger = self._logger = logging.getLogger(self._name)
        return getattr(logger, attr)


def get_logger(name: str) -> LazyLogger:
    return LazyLogger(name)
