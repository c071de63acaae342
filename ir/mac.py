"""The MAC kind of a matrix product: which multiply-accumulate its input and weight types need.

One vocabulary for the whole tool. The hardware builds one MAC array per :class:`MacKind`
(:mod:`lowbit.hw.mvtu.mac`) and the cost model prices each (:mod:`lowbit.hw.cost`); the energy
model, the ONNX layer table and the training reports group the kinds by the arithmetic of one MAC,
:attr:`MacKind.op` (a :class:`MacOp`), and keep their own display names for those groups.

=================  ===================  ================  ===================================
weights            bipolar inputs       integer inputs    :attr:`MacKind.op`
=================  ===================  ================  ===================================
``BIPOLAR``        ``XNOR``             ``ADDSUB``        ``XNOR`` / ``ADD``
``TERNARY``        ``TERNARY``          ``TERNARY``       ``ADD``
``POW2_b``         ``SHIFT``            ``SHIFT``         ``SHIFT``
``INTk``           ``MULTIBIT``         ``MULTIBIT``      ``MULTIPLY``
=================  ===================  ================  ===================================

Adding a weight type with a new MAC kind: its :class:`~lowbit.ir.datatypes.Kind` (ranges, name,
parsing, :meth:`~lowbit.ir.datatypes.DataType.sample`), a member and a row here, its lane in
:mod:`lowbit.hw.mvtu.mac`, its datapath terms in :mod:`lowbit.hw.cost` and, unless it is stored in
two's complement, its weight encoding in :mod:`lowbit.hw.mvtu.spec`.
"""

from __future__ import annotations

import enum

from .datatypes import DataType, Kind

__all__ = ["MacKind", "MacOp", "mac_kind", "WEIGHT_KINDS", "WEIGHT_TYPES"]


class MacOp(enum.StrEnum):
    """The arithmetic of one multiply-accumulate, whatever the datapath that computes it."""

    XNOR = "xnor"
    """A 1-bit XNOR into a popcount (bipolar inputs and weights)."""
    ADD = "add"
    """Add, subtract or skip the input (bipolar or ternary weights)."""
    SHIFT = "shift"
    """Shift the input by a power of two, then add (power-of-two weights)."""
    MULTIPLY = "multiply"
    """Multiply by a multi-bit weight, then add."""


class MacKind(enum.StrEnum):
    """The MAC array of a matrix product, from its input and weight types (module docstring).

    A ``str`` enumeration: a member equals its value (``MacKind.XNOR == "xnor"``) and prints as it,
    so reports, JSON and command-line output spell the kinds as before.
    """

    XNOR = "xnor"
    """Bipolar inputs x bipolar weights: XNOR-popcount."""
    ADDSUB = "addsub"
    """Integer inputs x bipolar weights: add or subtract each input."""
    TERNARY = "ternary"
    """Ternary weights (any input): add, subtract or skip."""
    SHIFT = "shift"
    """Power-of-two weights (any input): shift and add."""
    MULTIBIT = "multibit"
    """``INTk`` weights (any input): a product per lane."""

    @property
    def op(self) -> MacOp:
        """The arithmetic of one MAC of this kind, which the energy model and the reports count."""
        return _OPS[self]

    @classmethod
    def of(cls, weight_dtype: DataType, *, bipolar_input: bool) -> "MacKind":
        """The MAC kind of weights of ``weight_dtype`` on bipolar (or else integer) inputs.

        The one classification of the tool; :func:`mac_kind` applies it to a graph node. Only
        whether the inputs are bipolar matters, so a front end can classify a layer before it has
        an integer input type (a training network with float activations passes ``False``).

        Raises
        ------
        TypeError
            If ``weight_dtype`` is not a :class:`DataType` or ``bipolar_input`` not a ``bool``.
        ValueError
            If ``weight_dtype`` is not a weight type (:data:`WEIGHT_TYPES`).
        """
        if not isinstance(weight_dtype, DataType):
            raise TypeError(f"weight_dtype must be a DataType, not {weight_dtype!r}")
        if not isinstance(bipolar_input, bool):
            raise TypeError(f"bipolar_input must be a bool, not {bipolar_input!r}")
        row = _TABLE.get(weight_dtype.kind)
        if row is None:
            raise ValueError(f"weight_dtype must be {WEIGHT_TYPES}, not {weight_dtype!r}")
        return row[0] if bipolar_input else row[1]


_TABLE: dict[Kind, tuple[MacKind, MacKind]] = {
    # weight kind: (MAC kind on bipolar inputs, on integer inputs)
    Kind.BIPOLAR: (MacKind.XNOR, MacKind.ADDSUB),
    Kind.TERNARY: (MacKind.TERNARY, MacKind.TERNARY),
    Kind.POW2: (MacKind.SHIFT, MacKind.SHIFT),
    Kind.INT: (MacKind.MULTIBIT, MacKind.MULTIBIT),
}

_OPS: dict[MacKind, MacOp] = {
    MacKind.XNOR: MacOp.XNOR,
    MacKind.ADDSUB: MacOp.ADD,
    MacKind.TERNARY: MacOp.ADD,
    MacKind.SHIFT: MacOp.SHIFT,
    MacKind.MULTIBIT: MacOp.MULTIPLY,
}

WEIGHT_KINDS: tuple[Kind, ...] = tuple(_TABLE)
"""The kinds of :class:`DataType` a matrix product's weights may have."""


def _one_of(names: list[str]) -> str:
    """``"a, b or c"``."""
    return f"{', '.join(names[:-1])} or {names[-1]}"


WEIGHT_TYPES: str = _one_of([k.pattern for k in WEIGHT_KINDS])
"""The weight types as messages spell them: ``"BIPOLAR, TERNARY, POW2_<b> or INT<k>"``."""


def mac_kind(node) -> MacKind:
    """The MAC kind of ``node``, a :class:`~lowbit.ir.graph.MatMulThreshold`, from its input and
    weight types (:meth:`MacKind.of`); also its :attr:`~lowbit.ir.graph.MatMulThreshold.mac_kind`.

    Raises
    ------
    TypeError
        If ``node`` has no ``input_dtype`` and ``weight_dtype`` data types (a sliding window, a
        pool: not a matrix product).
    """
    input_dtype = getattr(node, "input_dtype", None)
    weight_dtype = getattr(node, "weight_dtype", None)
    if not isinstance(input_dtype, DataType) or not isinstance(weight_dtype, DataType):
        raise TypeError(f"node must be a MatMulThreshold, not {node!r}")
    return MacKind.of(weight_dtype, bipolar_input=input_dtype.kind is Kind.BIPOLAR)
