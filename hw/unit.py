"""The unit protocol: what every engine spec answers, so the mapper, the schedule and the stitched
accelerator treat all units alike.

A *unit spec* is a frozen, Amaranth-free description of one hardware block. Every spec (the MVTU,
the sparse layer, the sliding-window generator, the pools, the FIFO, the threshold unit, the width
converter and the label select) answers:

``node``
    The IR node it implements (``None`` for the blocks the stitching adds: converters, label
    select).
``in_elems``, ``out_elems``
    Elements per beat on its input and output streams.
``in_bits``, ``out_bits``
    Bits per element on those streams.
``in_size``, ``out_size``
    Elements of one input vector and of one output vector (for a block on images: the image).
``cycles_per_image(vectors=1, ddr_bits=None)``
    Steady-state cycles per image when the unit processes ``vectors`` input vectors per image
    (``OH * OW`` for a matrix product after a sliding window, else 1); ``ddr_bits`` is the rate of
    a DDR weight stream in bits per cycle for a unit whose weights stream in. One meaning for all.
``resources()``
    The estimated :class:`~lowbit.ir.resources.Resources`.
``reference(x)``
    The bit-exact software model (``sw_reference``).
``create()``
    The Amaranth component (imported only here, so pricing a spec never loads Amaranth).

The mapper's search asks a family for its candidate foldings of a node through the
:meth:`candidates` class hook; :mod:`lowbit.hw.registry` maps IR node types to families.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..ir.resources import Resources

__all__ = ["UnitSpec", "ImageBlock", "SearchContext"]


@runtime_checkable
class UnitSpec(Protocol):
    """The protocol of every engine spec (see the module docstring)."""

    @property
    def node(self) -> Any: ...

    @property
    def in_elems(self) -> int: ...

    @property
    def out_elems(self) -> int: ...

    @property
    def in_bits(self) -> int: ...

    @property
    def out_bits(self) -> int: ...

    @property
    def in_size(self) -> int: ...

    @property
    def out_size(self) -> int: ...

    def cycles_per_image(self, vectors: int = 1, ddr_bits: int | None = None) -> int: ...

    def resources(self) -> Resources: ...

    def reference(self, x): ...

    def create(self): ...


@dataclass(frozen=True)
class SearchContext:
    """What the folding search knows about one matrix product when it asks a family for candidates.

    Attributes
    ----------
    columns : int
        The values ``SIMD`` must divide: ``MW``, or the channels ``C`` after a sliding window.
    vectors : int
        Input vectors per image.
    act_density : float, tuple or None
        Expected share of non-zero input activations (``None``: no sparse engine).
    ddr_bits : int or None
        Bits per cycle of a DDR weight stream when weights may stream from DDR, else ``None``.
    """

    columns: int
    vectors: int = 1
    act_density: float | tuple[float, ...] | None = None
    ddr_bits: int | None = None


class ImageBlock:
    """The protocol for a dataflow block on ``(H, W, C)`` images with ``simd`` channels per beat in
    and out (a mixin of the frozen spec dataclasses that have ``node``, ``in_shape``, ``dtype``,
    ``simd``, ``elem_bits``, ``out_dims`` and ``cycles()`` per image)."""

    ENGINE = "-"
    """Not a matrix-product engine (the schedule's ``engine`` names those)."""

    # provided by the spec dataclass that mixes this in (annotations only: not dataclass fields)
    simd: int
    in_shape: tuple[int, int, int]

    @property
    def elem_bits(self) -> int:
        raise NotImplementedError

    def cycles(self) -> int:
        raise NotImplementedError

    @property
    def in_elems(self) -> int:
        return self.simd

    @property
    def out_elems(self) -> int:
        return self.simd

    @property
    def in_bits(self) -> int:
        return self.elem_bits

    @property
    def out_bits(self) -> int:
        return self.elem_bits

    @property
    def in_size(self) -> int:
        return math.prod(self.in_shape)

    def cycles_per_image(self, vectors: int = 1, ddr_bits: int | None = None) -> int:
        """Cycles per image: a block takes a whole image per image (``vectors`` is always 1)."""
        return self.cycles()
