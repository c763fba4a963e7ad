"""Values compared with their types made explicit (shared by the codec and protocol tests).

A decoded message must equal the one encoded not only by ``==``: ``True == 1`` and
``1 == 1.0`` would let a codec that loses a type pass.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any


def typed(value: Any) -> Any:
    """``value`` with every type made explicit, so ``True`` differs from ``1``
    and ``b"a"`` from ``"a"`` -- plain ``==`` on calls would not tell."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, tuple(typed(getattr(value, f.name)) for f in dataclasses.fields(value)))
    if isinstance(value, Enum):
        return (type(value).__name__, value.value)
    if isinstance(value, tuple):
        return ("tuple", tuple(typed(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((typed(k), typed(v)) for k, v in sorted(value.items())))
    return (type(value).__name__, value)
