"""Bit-level encoding of the accelerator's streams as plain Python integers.

Used by every testbench (Amaranth simulator, cocotb, the compiled harness) so that all of them
pack inputs and unpack results the same way: element ``i`` of a beat at bits
``[i * width, (i + 1) * width)``; the result beat is ``label`` at the LSB, then the scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["StreamFormat", "input_beats", "decode_result", "label_bits"]


def label_bits(classes: int) -> int:
    return max(0, (classes - 1).bit_length())


@dataclass(frozen=True)
class StreamFormat:
    """Widths of the accelerator's ports, enough for a testbench with no Amaranth in it."""

    input_size: int     # MW of the first layer
    simd: int           # input elements per beat
    in_bits: int        # bits per input element
    classes: int
    score_bits: int     # bits per score (two's complement)

    @property
    def beats_per_image(self) -> int:
        return self.input_size // self.simd

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def input_beats(fmt: StreamFormat, x: np.ndarray) -> list[list[int]]:
    """Beats for each image of ``x`` (``(B, input_size)`` integers): a list per image."""
    x = np.asarray(x, dtype=np.int64)
    mask = (1 << fmt.in_bits) - 1
    images = []
    for row in x:
        beats = []
        for s in range(fmt.beats_per_image):
            word = 0
            for i, v in enumerate(row[s * fmt.simd:(s + 1) * fmt.simd]):
                word |= (int(v) & mask) << (i * fmt.in_bits)
            beats.append(word)
        images.append(beats)
    return images


def decode_result(fmt: StreamFormat, word: int) -> tuple[int, list[int]]:
    """``(label, scores)`` from one output beat."""
    lb = label_bits(fmt.classes)
    label = word & ((1 << lb) - 1)
    word >>= lb
    w = fmt.score_bits
    scores = []
    for _ in range(fmt.classes):
        v = word & ((1 << w) - 1)
        scores.append(v - (1 << w) if v >> (w - 1) else v)
        word >>= w
    return label, scores
