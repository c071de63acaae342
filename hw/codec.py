"""Bit-level encoding of the accelerator's streams as plain Python integers.

Used by every testbench (Amaranth simulator, cocotb, the compiled harness) so that all of them
pack inputs and unpack results the same way: element ``i`` of a beat at bits
``[i * width, (i + 1) * width)``; the result beat is ``label`` at the LSB, then the scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "StreamFormat",
    "input_beats",
    "decode_result",
    "label_bits",
    "pack_fields",
    "unpack_fields",
    "input_words",
    "decode_results",
]


def label_bits(classes: int) -> int:
    return max(0, (classes - 1).bit_length())


@dataclass(frozen=True)
class StreamFormat:
    """Widths of the accelerator's ports, enough for a testbench with no Amaranth in it."""

    input_size: int  # MW of the first layer
    simd: int  # input elements per beat
    in_bits: int  # bits per input element
    classes: int
    score_bits: int  # bits per score (two's complement)

    @property
    def beats_per_image(self) -> int:
        return self.input_size // self.simd

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def input_beats(fmt: StreamFormat, x: np.ndarray) -> list[list[int]]:
    """Beats for each image of ``x`` (``(B, input_size)`` integers, or ``(B, H, W, C)`` images
    streamed row-major, channels last): a list per image."""
    x = np.asarray(x, dtype=np.int64)
    x = x.reshape(len(x), -1)
    mask = (1 << fmt.in_bits) - 1
    images = []
    for row in x:
        beats = []
        for s in range(fmt.beats_per_image):
            word = 0
            for i, v in enumerate(row[s * fmt.simd : (s + 1) * fmt.simd]):
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


def _words(bits: int) -> int:
    return (bits + 31) // 32


def pack_fields(values: np.ndarray, width: int) -> np.ndarray:
    """Pack rows of integer fields (two's complement, ``width`` bits each, first at the LSB) into
    little-endian ``uint32`` words: ``(n, k)`` -> ``(n, ceil(k * width / 32))``. Vectorised."""
    v = np.asarray(values, dtype=np.int64)
    n, k = v.shape
    bits = ((v[..., None] >> np.arange(width)) & 1).astype(np.uint8).reshape(n, k * width)
    words = _words(k * width)
    padded = np.zeros((n, words * 32), dtype=np.uint8)
    padded[:, : k * width] = bits
    return np.packbits(padded, axis=1, bitorder="little").view("<u4").astype(np.uint32)


def unpack_fields(
    words: np.ndarray, width: int, count: int, *, offset: int = 0, signed: bool = False
) -> np.ndarray:
    """Inverse of :func:`pack_fields`: ``count`` fields of ``width`` bits starting at bit
    ``offset``."""
    w = np.ascontiguousarray(words, dtype="<u4")
    bits = np.unpackbits(w.view(np.uint8), axis=1, bitorder="little")[
        :, offset : offset + count * width
    ]
    fields = bits.reshape(len(w), count, width).astype(np.int64) << np.arange(width)
    v = fields.sum(axis=-1)
    if signed:
        v = np.where(v >= 1 << (width - 1), v - (1 << width), v)
    return v


def input_words(fmt: StreamFormat, x: np.ndarray) -> np.ndarray:
    """All images' input beats as one ``(B * beats_per_image, words)`` uint32 array."""
    x = np.asarray(x, dtype=np.int64)
    return pack_fields(x.reshape(-1, fmt.simd), fmt.in_bits)


def decode_results(fmt: StreamFormat, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(labels (B,), scores (B, classes))`` from the output beats as ``(B, words)`` uint32."""
    lb = label_bits(fmt.classes)
    labels = unpack_fields(words, lb, 1)[:, 0] if lb else np.zeros(len(words), dtype=np.int64)
    scores = unpack_fields(words, fmt.score_bits, fmt.classes, offset=lb, signed=True)
    return labels, scores
