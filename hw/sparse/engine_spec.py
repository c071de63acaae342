"""Spec of the EIE-style sparse engine: one frozen object, three faces.

``SparseEngineSpec(rows=..., cols=..., pes=..., depth=...)`` fixes the engine's parameters and,
optionally, the weight image its memories hold at elaboration. ``reference(x)`` delegates to
:func:`lowbit.sw_reference.sparse.sparse_matvec`, ``create()`` returns the Amaranth component
(:class:`lowbit.hw.sparse.engine.SparseEngine`), ``cycles()`` runs the cycle model
(:mod:`lowbit.hw.sparse.cycle_model`) and ``resources()`` is a first resource estimate.

No Amaranth at module level, so the mapper can use it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ...ir.datatypes import clog2
from ...ir.resources import Resources
from ...sw_reference.sparse import SparseImage, sparse_matvec
from ..cost import memory_resources
from .cycle_model import column_walk, engine_cycles

__all__ = ["SparseEngineSpec", "clog2"]  # clog2: lowbit.ir.datatypes.clog2, for hw.sparse.engine


_POSITIVE = (
    "rows",
    "cols",
    "pes",
    "depth",
    "lanes",
    "entries_per_word",
    "index_bits",
    "zero_bits",
    "weight_bits",
    "act_bits",
    "out_bits",
)


@dataclass(frozen=True, eq=False)
class SparseEngineSpec:
    """Parameters of a sparse engine for an ``rows x cols`` fully connected layer.

    Parameters
    ----------
    rows, cols : int
        Matrix shape (outputs, inputs).
    pes : int
        Processing elements ``N``; row ``i`` is held by PE ``i mod N``.
    depth : int
        Activation-queue depth ``D`` per PE.
    lanes : int
        Activations per input beat (the width of the non-zero detector).
    entries_per_word : int
        Entries per sparse-matrix memory word, a power of two.
    index_bits, zero_bits : int
        Widths of the codebook index ``v`` and the zero-run count ``z``.
    weight_bits, act_bits, out_bits : int
        Signed widths of the codebook values, the input activations and the outputs.
    shift : int
        Requantizing right shift (round half up) after the optional ``relu``.
    capacity : int, optional
        Entries each PE's sparse-matrix memory holds; by default the image's fullest PE.
    acc_bits : int, optional
        Accumulator width; by default wide enough for any input (no overflow).
    image : SparseImage, optional
        Weights held at elaboration (they can be loaded at run time instead).
    """

    rows: int
    cols: int
    pes: int
    depth: int = 8
    lanes: int = 4
    entries_per_word: int = 8
    index_bits: int = 4
    zero_bits: int = 4
    weight_bits: int = 8
    act_bits: int = 16
    out_bits: int = 16
    shift: int = 0
    relu: bool = True
    capacity: int | None = None
    acc_bits: int | None = None
    image: SparseImage | None = field(default=None, repr=False)

    def __post_init__(self):
        for name in _POSITIVE + ("shift",):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if v < (0 if name == "shift" else 1):
                raise ValueError(
                    f"{name} must be a {'non-negative' if name == 'shift' else 'positive'} "
                    f"integer, not {v!r}"
                )
        if self.entries_per_word & (self.entries_per_word - 1):
            raise ValueError(
                f"entries_per_word must be a power of two, not {self.entries_per_word!r}"
            )
        if not isinstance(self.relu, bool):
            raise TypeError(f"relu must be a bool, not {self.relu!r}")
        im = self.image
        if im is not None:
            if not isinstance(im, SparseImage):
                raise TypeError(f"image must be a SparseImage, not {type(im).__name__}")
            for name in ("rows", "cols", "pes", "index_bits", "zero_bits"):
                if getattr(im, name) != getattr(self, name):
                    raise ValueError(
                        f"image {name} ({getattr(im, name)}) must equal the spec's {name} "
                        f"({getattr(self, name)})"
                    )
            lo, hi = -(1 << (self.weight_bits - 1)), (1 << (self.weight_bits - 1)) - 1
            if im.codebook.min() < lo or im.codebook.max() > hi:
                raise ValueError(
                    f"codebook values must fit weight_bits={self.weight_bits} ({lo}..{hi}), "
                    f"not {int(im.codebook.min())}..{int(im.codebook.max())}"
                )
        if self.capacity is None:
            cap = im.max_entries if im is not None else self.rows_per_pe * self.cols
            object.__setattr__(self, "capacity", max(1, int(cap)))
        elif not isinstance(self.capacity, (int, np.integer)) or self.capacity < 1:
            raise ValueError(f"capacity must be a positive integer, not {self.capacity!r}")
        if im is not None and im.max_entries > self.capacity:
            raise ValueError(
                f"capacity ({self.capacity}) must hold the image's fullest PE "
                f"({im.max_entries} entries)"
            )
        if self.acc_bits is None:
            bound = (1 << (self.weight_bits - 1)) * (1 << (self.act_bits - 1)) * self.cols
            object.__setattr__(self, "acc_bits", bound.bit_length() + 1)
        elif not isinstance(self.acc_bits, (int, np.integer)) or self.acc_bits < 2:
            raise ValueError(f"acc_bits must be an integer >= 2, not {self.acc_bits!r}")

    # -- derived sizes ---------------------------------------------------------------------------

    @property
    def rows_per_pe(self) -> int:
        return -(-self.rows // self.pes)

    @property
    def beats(self) -> int:
        """Input beats per vector."""
        return -(-self.cols // self.lanes)

    @property
    def out_beats(self) -> int:
        """Output beats per vector (``pes`` rows each)."""
        return self.rows_per_pe

    @property
    def entry_bits(self) -> int:
        return self.index_bits + self.zero_bits

    @property
    def _capacity(self) -> int:
        """``capacity``, which ``__post_init__`` always sets (``None`` only as an argument)."""
        cap = self.capacity
        assert cap is not None
        return cap

    @property
    def pointer_bits(self) -> int:
        return (self._capacity).bit_length()

    @property
    def matrix_words(self) -> int:
        return -(-self._capacity // self.entries_per_word)

    @property
    def col_bits(self) -> int:
        return clog2(self.cols)

    def with_image(self, image: SparseImage) -> SparseEngineSpec:
        """This spec holding ``image`` (same capacity, so one hardware build serves both)."""
        return replace(self, image=image)

    # -- the three faces -------------------------------------------------------------------------

    @classmethod
    def for_layer(cls, layer, *, depth: int = 8, lanes: int = 4, **kw) -> "SparseEngineSpec":
        """The engine for a fixed-point layer (anything with ``image``, ``shift``, ``relu``,
        ``weight_bits`` and ``act_bits``, such as
        :class:`lowbit.quant.deep_compression.FixedPointLayer`): its image, shift and ReLU, outputs
        of ``act_bits`` bits."""
        image = layer.image
        return cls(
            rows=image.rows,
            cols=image.cols,
            pes=image.pes,
            depth=depth,
            lanes=lanes,
            weight_bits=layer.weight_bits,
            act_bits=layer.act_bits,
            out_bits=layer.act_bits,
            shift=layer.shift,
            relu=layer.relu,
            image=image,
            **kw,
        )

    def reference(self, x, image: SparseImage | None = None) -> np.ndarray:
        """Outputs for activations ``x`` (``(cols,)`` or ``(B, cols)``), bit-exact."""
        image = self._image(image)
        return sparse_matvec(image, x, shift=self.shift, out_bits=self.out_bits, relu=self.relu)

    def create(self):
        from .engine import SparseEngine

        return SparseEngine(self)

    def timing(self, x, image: SparseImage | None = None):
        """The cycle model's :class:`~lowbit.hw.sparse.cycle_model.SparseTiming` for one vector
        ``x``."""
        image = self._image(image)
        steps, squashed = column_walk(image, self.entries_per_word)
        return engine_cycles(
            steps, x, depth=self.depth, lanes=self.lanes, rows=self.rows, squashed=squashed
        )

    def cycles(
        self,
        act_density: float = 1.0,
        *,
        image: SparseImage | None = None,
        samples: int = 4,
        seed: int = 0,
    ) -> float:
        """Mean cycles per vector over ``samples`` random vectors with ``act_density`` non-zeros."""
        if not 0.0 <= act_density <= 1.0:
            raise ValueError(f"act_density must lie in [0, 1], not {act_density!r}")
        image = self._image(image)
        rng = np.random.default_rng(seed)
        cnt, squashed = column_walk(image, self.entries_per_word)
        total = 0
        for _ in range(samples):
            x = (rng.random(self.cols) < act_density).astype(np.int64)
            total += engine_cycles(
                cnt, x, depth=self.depth, lanes=self.lanes, rows=self.rows, squashed=squashed
            ).cycles
        return total / samples

    def resources(self):
        """First resource estimate (a :class:`~lowbit.hw.cost.Resources`), per PE plus control.

        Per PE: the activation queue (``depth`` words of activation and column, LUTRAM as yosys maps
        a ``SyncFIFO``), the pointer memory (``cols`` words of two pointers), the sparse-matrix
        memory (``capacity`` entries), the accumulator RAM (``rows_per_pe`` words), the codebook in
        LUTs, one multiplier (one DSP48), the entry-select multiplexers (two entries of a word), the
        requantizer and the stage registers. Structural, not fitted: against yosys ``synth_xilinx``
        of the 1024x1024, 16-PE engine it is within about 10 % (LUT) and 25 % (FF), exact for BRAM
        and DSP (``benchmarks/results/sparse_engine.md``).
        """
        q_bits = self.act_bits + self.col_bits
        acc = self.acc_bits
        per_pe = (
            memory_resources(self.depth, q_bits)
            + memory_resources(self.cols, 2 * self.pointer_bits)
            + memory_resources(self.matrix_words, self.entries_per_word * self.entry_bits)
            + memory_resources(self.rows_per_pe, acc)
            + Resources(
                lut=self.weight_bits * (1 << self.index_bits) // 16 * 2
                + 3 * acc
                + 2 * self.pointer_bits
                + q_bits
                + 40
                + self.entries_per_word * self.entry_bits
                + 3 * self.out_bits,
                ff=3 * acc + 3 * self.pointer_bits + 2 * self.act_bits + self.weight_bits + 30,
                dsp=1 if self.weight_bits * self.act_bits > 64 else 0,
            )
        )
        control = Resources(
            lut=self.lanes * (self.act_bits + 4) + self.pes * self.out_bits + 80,
            ff=self.lanes * (self.act_bits + 1) + self.pes * self.out_bits + 80,
        )
        return sum([per_pe] * self.pes) + control

    def _image(self, image):
        image = image if image is not None else self.image
        if image is None:
            raise ValueError("this spec holds no image: pass image=...")
        return image
