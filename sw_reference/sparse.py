"""EIE-style compressed sparse storage and the integer sparse matrix-vector product
(ARITHMETIC.md §6).

Format (Han et al., ISCA 2016):

* Row ``i`` of an ``R x C`` weight matrix belongs to PE ``i mod N``, where it is local row
  ``i // N``.
* Each PE stores its slice column by column. An entry is ``(v, z)``: ``v`` an index into a codebook
  of ``2**index_bits`` shared weights (index 0 is reserved for the value 0), ``z`` the number of
  zero rows before the entry (counted from the previous entry of the column, or from the top of
  the column for its first entry). The first entry of a column sits at local row ``z``, every
  later one at ``previous + z + 1``.
* A run of more than ``2**zero_bits - 1`` zeros is broken by a padding entry ``(0, max_run)``,
  which occupies a (zero) row itself. Trailing zeros of a column need no entries.
* Column pointers ``p`` (``C + 1`` per PE): the entries of column ``j`` are ``p[j] .. p[j+1]-1``.

The product is computed on integers: ``acc = W @ x`` (``int64``), then optional ReLU, then a
requantizing right shift by ``shift`` bits rounding half up (``floor(acc / 2**shift + 1/2)``), then
saturation to a signed ``out_bits`` integer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "PEImage",
    "SparseImage",
    "encode_sparse",
    "decode_sparse",
    "requantize",
    "sparse_matvec",
    "dense_weights",
]


@dataclass(frozen=True, eq=False)
class PEImage:
    """The compressed slice of one PE: ``ptr`` (``C + 1``), entry codebook indices ``v`` and zero
    runs ``z``."""

    ptr: np.ndarray
    v: np.ndarray
    z: np.ndarray

    @property
    def entries(self) -> int:
        return int(len(self.v))


@dataclass(frozen=True, eq=False)
class SparseImage:
    """A weight matrix of ``rows x cols`` encoded for ``pes`` PEs with a shared ``codebook``."""

    rows: int
    cols: int
    pes: int
    codebook: np.ndarray
    pe_images: tuple[PEImage, ...]
    index_bits: int = 4
    zero_bits: int = 4

    @property
    def max_entries(self) -> int:
        """Entries of the fullest PE (the per-PE memory it needs)."""
        return max(im.entries for im in self.pe_images)

    @property
    def total_entries(self) -> int:
        return sum(im.entries for im in self.pe_images)

    @property
    def rows_per_pe(self) -> int:
        return -(-self.rows // self.pes)

    def pe_rows(self, p: int) -> int:
        """Number of rows held by PE ``p``."""
        return len(range(p, self.rows, self.pes))

    def column_entries(self) -> np.ndarray:
        """``(pes, cols)``: entries (padding included) of each column in each PE."""
        return np.stack([np.diff(im.ptr) for im in self.pe_images])

    def encoded_bits(self, *, pointer_bits: int = 16, codebook_bits: int = 32) -> int:
        """Storage of the image: entries of ``index_bits + zero_bits``, pointers and the
        codebook."""
        entry = self.index_bits + self.zero_bits
        return (
            self.total_entries * entry
            + self.pes * (self.cols + 1) * pointer_bits
            + len(self.codebook) * codebook_bits
        )


def _check_int(name: str, value, low: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")
    return int(value)


def encode_sparse(
    indices, codebook, pes: int, *, index_bits: int = 4, zero_bits: int = 4
) -> SparseImage:
    """Encode a matrix of codebook ``indices`` (``R x C``, 0 meaning zero) for ``pes`` PEs.

    Raises
    ------
    ValueError
        If an index is outside ``0 .. 2**index_bits - 1``, the codebook does not have
        ``2**index_bits`` entries or its entry 0 is not 0.
    """
    pes = _check_int("pes", pes, 1)
    index_bits = _check_int("index_bits", index_bits, 1)
    zero_bits = _check_int("zero_bits", zero_bits, 1)
    idx = np.asarray(indices)
    if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(
            f"indices must be a 2-D integer array, not {idx.dtype} of shape {idx.shape}"
        )
    k = 1 << index_bits
    if idx.size and (idx.min() < 0 or idx.max() >= k):
        raise ValueError(
            f"indices must lie in 0..{k - 1} (index_bits={index_bits}), "
            f"not {int(idx.min())}..{int(idx.max())}"
        )
    cb = np.asarray(codebook)
    if cb.shape != (k,) or not np.issubdtype(cb.dtype, np.integer):
        raise ValueError(
            f"codebook must be {k} integers (index_bits={index_bits}), not {cb.dtype} of shape "
            f"{cb.shape}"
        )
    if cb[0] != 0:
        raise ValueError(f"codebook entry 0 is reserved for the value 0, not {int(cb[0])}")
    rows, cols = idx.shape
    max_run = (1 << zero_bits) - 1
    images = []
    for p in range(pes):
        sub = idx[p::pes]
        ptr, vs, zs = [0], [], []
        for j in range(cols):
            last = -1
            for r in np.flatnonzero(sub[:, j]):
                gap = int(r) - last - 1
                while gap > max_run:
                    vs.append(0)
                    zs.append(max_run)
                    gap -= max_run + 1
                vs.append(int(sub[r, j]))
                zs.append(gap)
                last = int(r)
            ptr.append(len(vs))
        images.append(
            PEImage(
                np.array(ptr, dtype=np.int64),
                np.array(vs, dtype=np.int64),
                np.array(zs, dtype=np.int64),
            )
        )
    return SparseImage(rows, cols, pes, cb.astype(np.int64), tuple(images), index_bits, zero_bits)


def decode_sparse(image: SparseImage) -> np.ndarray:
    """The ``R x C`` matrix of codebook indices that ``image`` encodes (exact inverse of
    :func:`encode_sparse`)."""
    idx = np.zeros((image.rows, image.cols), dtype=np.int64)
    for p, im in enumerate(image.pe_images):
        nrows = image.pe_rows(p)
        for j in range(image.cols):
            row = -1
            for e in range(int(im.ptr[j]), int(im.ptr[j + 1])):
                row += int(im.z[e]) + 1
                if row >= nrows:
                    raise ValueError(
                        f"PE {p} column {j} entry {e}: row {row} beyond the PE's {nrows} rows"
                    )
                idx[row * image.pes + p, j] = im.v[e]
    return idx


def dense_weights(image: SparseImage) -> np.ndarray:
    """The integer weight matrix (``codebook[indices]``) of ``image``."""
    return image.codebook[decode_sparse(image)]


def requantize(acc, *, shift: int, out_bits: int, relu: bool) -> np.ndarray:
    """ReLU (when ``relu``), right shift by ``shift`` rounding half up, saturation to signed
    ``out_bits``."""
    shift = _check_int("shift", shift, 0)
    out_bits = _check_int("out_bits", out_bits, 2)
    y = np.asarray(acc, dtype=np.int64)
    if relu:
        y = np.maximum(y, 0)
    if shift:
        y = (y + (1 << (shift - 1))) >> shift
    return np.clip(y, -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1)


def sparse_matvec(
    image: SparseImage,
    x,
    *,
    shift: int = 0,
    out_bits: int = 16,
    relu: bool = True,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """``requantize(W @ x)`` for one vector ``(C,)`` or a batch ``(B, C)`` of integer activations.

    ``weights`` may pass :func:`dense_weights` of ``image`` when it is reused for many calls.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"x must hold integers, not {x.dtype}")
    if x.shape[-1] != image.cols:
        raise ValueError(f"x must have {image.cols} columns (the matrix's), not shape {x.shape}")
    w = dense_weights(image) if weights is None else weights
    acc = x.astype(np.int64) @ w.T
    return requantize(acc, shift=shift, out_bits=out_bits, relu=relu)
