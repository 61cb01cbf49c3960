"""Plain values from rows: a frozen dataclass filled from a row's same-named columns."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")


def from_row(cls: type[D], row: object, **given: Any) -> D:
    """``cls(**given)``, each other field taken from ``row``'s attribute of the same name.

    For read models that show a row as it is: a field the row has under another name, or
    shaped differently, is passed in ``given``.
    """
    taken = {f.name: getattr(row, f.name) for f in dataclasses.fields(cls) if f.init and f.name not in given}
    return cls(**taken, **given)
