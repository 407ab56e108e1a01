"""Value ranges for component options, written as the factory's type annotations.

The registry validates an experiment's options against the factory signature with pydantic
(`harness.registry.ComponentSpec.validate_options`), constraints included, when the file is
planned. A range written here is therefore reported with the file and the dotted key before
anything runs, where a check in the factory body would only fire once the job is built::

    def __init__(self, ctx: BuildContext, *, u1: Fraction = 0.8, dropout: DropRate = 0.1): ...

Checks that relate two options, or an option to the data, stay in the factory body.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Gt, Interval

Fraction = Annotated[float, Interval(ge=0, le=1)]
"""A weight or probability in [0, 1]."""

DropRate = Annotated[float, Interval(ge=0, lt=1)]
"""A drop or deletion probability in [0, 1): one would remove everything."""

NonNegative = Annotated[float, Ge(0)]
"""A scale or rate that may be zero (0 freezes, 0 disables)."""

Positive = Annotated[float, Gt(0)]
"""A width or ratio that must be above zero."""

Count = Annotated[int, Ge(0)]
"""A number of things that may be none."""

AtLeastOne = Annotated[int, Ge(1)]
"""A number of things that must be at least one (layers, heads, blocks)."""
