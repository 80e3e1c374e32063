"""A chip parameter: a value together with where it came from."""

from __future__ import annotations

from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Provenance = Literal["measured", "decompiled", "vendor", "fitted", "predicted"]
PROVENANCES: tuple[str, ...] = ("measured", "decompiled", "vendor", "fitted", "predicted")

T = TypeVar("T")

# Bounded so that no product or quotient of chip figures and program counts can overflow a
# float: every physical figure of a chip lies well inside [1e-30, 1e30] in its SI unit.
PosInt = Annotated[int, Field(gt=0, le=1 << 48, strict=True)]
SMALLEST_FIGURE = 1e-30


def _not_tiny(value: float) -> float:
    if value < SMALLEST_FIGURE:
        raise ValueError(f"must be at least {SMALLEST_FIGURE:g}: a smaller figure overflows the times derived from it")
    return value


PosFloat = Annotated[float, Field(gt=0, le=1e30, allow_inf_nan=False), AfterValidator(_not_tiny)]
StrictBool = Annotated[bool, Field(strict=True)]


class Param(BaseModel, Generic[T]):
    """One configured quantity: its value, how it is known and the source that says so."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: T
    provenance: Provenance
    source: Annotated[str, Field(min_length=1)]
    note: str | None = None
