"""The standard benchmark shapes: layer widths and batch sizes, and the dtypes.

Every benchmark measures these cases (``--large`` or a profile adds the last
one), so their numbers can be read side by side.
"""
from __future__ import annotations

from dataclasses import dataclass

DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Shape:
    """Layer widths and batch size of one benchmark case."""

    sizes: tuple[int, ...]
    batch: int
    large: bool = False

    @property
    def label(self) -> str:
        """``16-32-4`` style name of the widths."""
        return "-".join(map(str, self.sizes))

    @property
    def id(self) -> str:
        """Test id: widths and batch."""
        return f"{self.label}-b{self.batch}"

    @property
    def layers(self) -> list[tuple[int, int]]:
        """``(n_in, n_out)`` of every layer."""
        return list(zip(self.sizes[:-1], self.sizes[1:]))


SHAPES = (
    Shape((16, 32, 4), 1),
    Shape((64, 128, 10), 32),
    Shape((784, 256, 128, 10), 128),
    Shape((1024, 4096, 4096, 1024), 256, large=True),
)

#: The single-sample case: ``predict`` of a 1-D ``x`` measures per-call overhead.
SINGLE_SAMPLE = SHAPES[0]
#: The shape ``fit`` is measured on.
FIT_SHAPE = SHAPES[1]
#: The ``fit`` case: one epoch of FIT_SAMPLES samples in batches of FIT_SHAPE.batch.
FIT_SAMPLES = 4096


def select(labels=None, large: bool = False) -> list[Shape]:
    """The standard shapes whose widths are among ``labels`` (``784-256-128-10``
    style; None: all), the large one only with ``large`` or when named.

    Raises ``ValueError`` naming the standard shapes for a label that is not one.
    """
    known = [shape.label for shape in SHAPES]
    unknown = [label for label in labels or () if label not in known]
    if unknown:
        raise ValueError(f"unknown shape {unknown[0]}; the standard shapes are "
                         f"{', '.join(known)}")
    if labels:
        return [shape for shape in SHAPES if shape.label in labels]
    return [shape for shape in SHAPES if large or not shape.large]
