"""Small elaboration helpers shared by the hardware components."""

from __future__ import annotations

from amaranth.hdl import Mux, Value

__all__ = ["tree_sum", "pack_words", "wrap_counter"]


def tree_sum(values: list[Value]) -> Value:
    """Sum of ``values`` as a balanced adder tree (Amaranth widens each addition exactly)."""
    values = list(values)
    if not values:
        raise ValueError("tree_sum needs at least one value")
    while len(values) > 1:
        nxt = [values[i] + values[i + 1] for i in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            nxt.append(values[-1])
        values = nxt
    return values[0]


def pack_words(fields: list[int], width: int) -> int:
    """Concatenate integers (two's complement, ``width`` bits each), the first at the LSB."""
    mask = (1 << width) - 1
    word = 0
    for i, v in enumerate(fields):
        word |= (int(v) & mask) << (i * width)
    return word


def wrap_counter(m, sig, limit: int, en) -> Value:
    """``sig`` counts ``0 .. limit-1`` on ``en`` (synchronously in ``m``); returns the wrap
    condition, ``sig == limit - 1``."""
    wrap = sig == limit - 1
    with m.If(en):
        m.d.sync += sig.eq(Mux(wrap, 0, sig + 1))
    return wrap
