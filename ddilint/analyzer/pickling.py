"""How the engine's frozen dataclasses pickle (results cross from workers, and sit in the
cache, as pickles)."""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter
from typing import Any, TypeVar

_T = TypeVar("_T")


def compact_pickle(cls: type[_T]) -> type[_T]:
    """Pickle a frozen dataclass as `(cls, field values)`.

    The default for such classes (`__getstate__`/`__setstate__` from `dataclasses`) calls
    `fields()` and `object.__setattr__` per field of every object, in Python: most of the
    time a worker spends opening the project's summaries. Compiled (setup.py), a frozen
    dataclass cannot be unpickled that way at all: its fields refuse the assignment. The
    values go through `__init__` again, so an object comes back equal to the one pickled.
    Every frozen dataclass of the engine takes this decorator (a test checks).
    """
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    if len(names) < 2:  # attrgetter of one name gives the value, not a tuple
        raise TypeError(f"compact_pickle: {cls.__name__} needs two fields or more")
    get = attrgetter(*names)

    def reduce(self: _T) -> tuple[type[_T], tuple[Any, ...]]:
        return cls, get(self)

    cls.__reduce__ = reduce  # type: ignore[assignment,method-assign]
    return cls
