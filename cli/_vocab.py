"""One spelling of quantization schemes for every ``lowbit`` command: the names of the IR's data
types (:class:`lowbit.ir.datatypes.DataType`), case-insensitive.

=============  =====================================================  ===========================
scheme         meaning                                                old spellings (one release)
=============  =====================================================  ===========================
``BIPOLAR``    +-1 (train: XNOR-Net scale)                            ``binary`` (train)
``TERNARY``    -1, 0, +1 (train: TWN)
``INT<k>``     signed k-bit integers                                  ``int:k`` (train weights)
``UINT<k>``    unsigned k-bit integers (activations)                  ``int:k`` (train ``--acts``)
``POW2_<b>``   0 and +-2^j, b bits (train: LogQuant)                  ``log2:b`` (train)
``FLOAT``      not quantized (``train`` only)
=============  =====================================================  ===========================

``lowbit quantize`` always spelled the types this way (in lower case, still accepted as is).
``lowbit train`` also takes training *rules* that store one of these types: ``bc`` (stochastic
BinaryConnect, stores BIPOLAR), ``ttq`` (trained ternary, stores INT4), ``inq:b`` (incremental,
stores POW2_b) and ``dorefa:k`` (stores INT(k+1)); they name an algorithm, not a type, and keep
their spelling. An old spelling is read with a warning naming the new one.

:func:`parse_scheme` is the one reader; :func:`train_spelling` and :func:`ptq_spelling` give the
strings the training loop (:class:`~lowbit.quant.train.loop.ZooConfig`) and the post-training
quantizer (:class:`~lowbit.quant.onnx.ptq.PTQConfig`) take.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from .. import LowbitError

__all__ = ["ROLES", "Scheme", "parse_scheme", "ptq_spelling", "scheme_name", "train_spelling"]

log = logging.getLogger(__name__)

# Per role: the kinds it takes and, for those with a width, the widths (inclusive range).
_Widths = tuple[int, int] | None
ROLES: dict[str, dict[str, _Widths]] = {
    "train-weights": {
        "FLOAT": None,
        "BIPOLAR": None,
        "TERNARY": None,
        "INT": (2, 16),
        "POW2_": (2, 6),
    },
    "train-acts": {"FLOAT": None, "BIPOLAR": None, "UINT": (2, 8)},
    "quantize-weights": {"BIPOLAR": None, "TERNARY": None, "INT": (2, 16), "POW2_": (2, 6)},
    "quantize-acts": {"BIPOLAR": None, "UINT": (1, 16), "INT": (2, 16)},
}
"""What each of ``train --weights``, ``train --acts``, ``quantize --weights`` and
``quantize --acts`` accepts (the libraries' own limits)."""

_RULES = {"bc": None, "ttq": None, "inq": (2, 6), "dorefa": (2, 16)}
"""``train --weights`` training rules (algorithm names, lower case, with ``:bits`` if ranged)."""


@dataclass(frozen=True)
class Scheme:
    """A scheme read by :func:`parse_scheme`: ``kind`` is ``FLOAT``, ``BIPOLAR``, ``TERNARY``,
    ``INT``, ``UINT``, ``POW2_`` or a training rule (``bc``, ``ttq``, ``inq``, ``dorefa``)."""

    kind: str
    bits: int | None = None

    @property
    def name(self) -> str:
        """The canonical spelling: ``INT4``, ``POW2_4``, ``BIPOLAR``, ``inq:4`` ..."""
        if self.kind in _RULES:
            return self.kind if self.bits is None else f"{self.kind}:{self.bits}"
        return self.kind if self.bits is None else f"{self.kind}{self.bits}"


def _describe(role: str) -> str:
    parts = []
    for kind, widths in ROLES[role].items():
        parts.append(kind if widths is None else f"{kind}<{widths[0]}..{widths[1]}>")
    text = ", ".join(parts) + " (case-insensitive)"
    if role == "train-weights":
        text += "; or a training rule: bc, ttq, inq:<2..6>, dorefa:<2..16>"
    return text


def _old_spelling(low: str, acts: bool) -> Scheme | None:
    """The scheme an old ``lowbit train`` spelling meant (``binary``, ``int:k``, ``log2:b``)."""
    if low == "binary":
        return Scheme("BIPOLAR")
    m = re.fullmatch(r"(int|log2):([0-9]+)", low)
    if m:
        kind = "POW2_" if m[1] == "log2" else ("UINT" if acts else "INT")
        return Scheme(kind, int(m[2]))
    return None


def _check(scheme: Scheme, text: str, flag: str, role: str) -> Scheme:
    table = _RULES if scheme.kind in _RULES else ROLES[role]
    if scheme.kind not in table:
        hint = ""
        if role == "train-acts" and scheme.kind == "INT":
            hint = f"; training activations are unsigned: UINT{scheme.bits}"
        raise LowbitError(f"{flag} {text!r}: expected {_describe(role)}{hint}")
    widths = table[scheme.kind]
    if widths is not None and not (
        scheme.bits is not None and widths[0] <= scheme.bits <= widths[1]
    ):
        raise LowbitError(
            f"{flag} {text!r}: {scheme.kind.rstrip('_:')} takes a bit width in "
            f"{widths[0]}..{widths[1]}"
        )
    if widths is None and scheme.bits is not None:
        raise LowbitError(f"{flag} {text!r}: {scheme.kind} takes no bit width")
    return scheme


def parse_scheme(text: str, flag: str, role: str) -> Scheme:
    """Read ``text`` given to ``flag`` (``--weights``, ``--acts``) for ``role`` (a key of
    :data:`ROLES`). Old spellings are read with a warning naming the new one; anything else not
    in the vocabulary is a :class:`~lowbit.LowbitError` naming the flag and what it accepts."""
    low = text.strip().lower()
    if role == "train-weights":
        m = re.fullmatch(r"(bc|ttq|inq|dorefa)(?::([0-9]+))?", low)
        if m:
            return _check(Scheme(m[1], int(m[2]) if m[2] else None), text, flag, role)
    old = _old_spelling(low, acts=role.endswith("acts"))
    if old is not None:
        _check(old, text, flag, role)
        log.warning("%s %s: old spelling, accepted for one release; write %s", flag, text, old.name)
        return old
    up = low.upper()
    if up in ("FLOAT", "BIPOLAR", "TERNARY"):
        return _check(Scheme(up), text, flag, role)
    m = re.fullmatch(r"(UINT|INT|POW2_)([0-9]+)", up)
    if not m:
        raise LowbitError(f"{flag} {text!r}: expected {_describe(role)}")
    return _check(Scheme(m[1], int(m[2])), text, flag, role)


def train_spelling(scheme: Scheme) -> str:
    """The string :class:`~lowbit.quant.train.loop.ZooConfig` takes for ``scheme``."""
    if scheme.kind in _RULES:
        return scheme.name
    words = {"FLOAT": "float", "BIPOLAR": "binary", "TERNARY": "ternary"}
    if scheme.kind in words:
        return words[scheme.kind]
    return f"{'log2' if scheme.kind == 'POW2_' else 'int'}:{scheme.bits}"


def scheme_name(spelling: str, *, acts: bool = False) -> str:
    """The one spelling of a training-loop string (the inverse of :func:`train_spelling`), for
    what ``train`` prints: ``int:8`` -> ``INT8`` (``UINT8`` for activations), ``binary`` ->
    ``BIPOLAR``, ``log2:4`` -> ``POW2_4``; training rules (``inq:4``) as they are."""
    words = {"float": "FLOAT", "binary": "BIPOLAR", "ternary": "TERNARY"}
    if spelling in words:
        return words[spelling]
    kind, _, bits = spelling.partition(":")
    if kind == "int" and bits.isdigit():
        return f"{'UINT' if acts else 'INT'}{bits}"
    if kind == "log2" and bits.isdigit():
        return f"POW2_{bits}"
    return spelling


def ptq_spelling(scheme: Scheme) -> str:
    """The string :class:`~lowbit.quant.onnx.ptq.PTQConfig` takes for ``scheme``."""
    return scheme.name.lower()
