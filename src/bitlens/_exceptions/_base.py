"""The base of every bitlens error, and how an error is pickled."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "BitlensError",
]


class BitlensError(Exception):
    """Base class of every error bitlens raises itself.

    An instance remembers the fields it was made from, so ``copy`` and ``pickle`` rebuild
    it through its own ``__init__`` (and so with its own message).
    """

    _fields: tuple[tuple[object, ...], dict[str, Any]]

    def __new__(cls, *args: object, **kwargs: object) -> Self:
        """Make the instance and remember its fields for :meth:`__reduce__`."""
        made = super().__new__(cls, *args, **kwargs)
        made._fields = (args, kwargs)
        return made

    def __reduce__(self) -> tuple[object, ...]:
        """Rebuild from the fields the instance was made from (for ``copy`` and ``pickle``)."""
        args, kwargs = self.__dict__.get("_fields", (self.args, {}))
        return (_rebuild, (type(self), args, kwargs))


def _rebuild(cls: type[BitlensError], args: tuple[object, ...], kwargs: dict[str, Any]) -> object:
    """Make ``cls(*args, **kwargs)``: how a pickled error comes back."""
    return cls(*args, **kwargs)
