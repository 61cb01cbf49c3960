"""Plain values from records: a dataclass filled from a row's (or report's) same-named attributes."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")


def from_attributes(cls: type[D], source: object, **given: Any) -> D:
    """``cls(**given)``, each other field taken from ``source``'s attribute of the same name.

    For read models that show a row or a result as it is: a field the source has under
    another name, or shaped differently, is passed in ``given``.
    """
    taken = {
        f.name: getattr(source, f.name) for f in dataclasses.fields(cls) if f.init and f.name not in given
    }
    return cls(**taken, **given)
