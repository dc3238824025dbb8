"""``Record``: a frozen value class, what ``@dataclass(frozen=True)`` gives, cheaply made.

A dataclass is built at import by generating its methods' source and compiling it: ~0.5 M
instructions a field, every ``xnet`` start, for each of them (the fleet's seven events were
~4 % of ``xnet sh``'s start; ``SSHSettings``, 17 fields, ~1.5 %). The classes on ``xnet``'s
start-up path that need nothing more than a frozen value subclass this one instead.
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["Record"]

_R = TypeVar("_R", bound="Record")


class Record:
    """A frozen value: equal (and hashing alike) only to one of its own class with equal
    fields, with a dataclass-style repr. A subclass names its fields in ``__slots__``, in
    the order its ``__init__`` takes them (positionally) and passes to ``_set``."""

    __slots__: tuple[str, ...] = ()

    def _set(self, *values: object) -> None:
        for name, value in zip(self.__slots__, values):
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def replace(self: _R, **changes: Any) -> _R:
        """A copy with ``changes`` (field name: value), as ``dataclasses.replace`` makes."""
        values = dict(zip(self.__slots__, self._values()))
        unknown = sorted(set(changes) - set(values))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {unknown[0]!r}")
        values.update(changes)
        return self.__class__(*values.values())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a {type(self).__name__}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.__class__, self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={v!r}" for n, v in zip(self.__slots__, self._values()))
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return self.__class__, self._values()  # pickle and copy build it anew
