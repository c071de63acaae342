"""Issue 16: every Brevitas/QONNX export runs with the model's own answers.

Seven real Brevitas models trained on the 8x8 digits (``tests/brevitas_zoo.py``; training and
both exports are cached), each exported by ``export_qonnx``'s default (dynamo) exporter and with
``dynamo=False``, are imported, and on the whole 450-image test split both the imported model's
exact execution (``ImportResult.predict``) and the integer graph alone (``graph.predict`` of the
encoded input: what the hardware's label select computes) must give torch's argmax on every image
whose top-2 outputs are not tied within float32 rounding (``brevitas_zoo.untied``).

Cases that fail because of a known bug are ``xfail(strict=True)``: each turns into a failure when
its fix lands, and the mark is removed then. ``benchmarks/brevitas_fidelity.py`` records the same
cases with accuracies and the RTL.
"""

from __future__ import annotations

import brevitas_zoo as zoo
import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.quant.data import load_digits_split
from lowbit.quant.onnx.importer import import_onnx

EXPORTS = {"dynamo": True, "torchscript": False}

_BIPOLAR_PAD = ("padding=1 on binary activations: 'padding needs the value 0, which BIPOLAR "
                "inputs cannot represent'", LowbitError)

KNOWN = {
    ("w1a1_cnn_pad_pool", "dynamo"): _BIPOLAR_PAD,
    ("w1a1_cnn_pad_pool", "torchscript"): _BIPOLAR_PAD,
}
"""The cases that fail at b4b4967: the bug, and the exception it raises (another exception fails
the test). Details in benchmarks/results/brevitas_fidelity.md."""


def _cases():
    for name in zoo.MODELS:
        for export in EXPORTS:
            marks = []
            if (name, export) in KNOWN:
                bug, raises = KNOWN[(name, export)]
                reason = f"issue 16: {bug}"
                marks.append(pytest.mark.xfail(strict=True, raises=raises, reason=reason))
            yield pytest.param(name, export, id=f"{name}-{export}", marks=marks)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def _first_disagreement(what: str, got: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> str:
    bad = np.flatnonzero((got != ref) & mask)
    if not bad.size:
        return ""
    i = int(bad[0])
    return (f"{what} disagrees with torch on {bad.size} of {int(mask.sum())} untied images, "
            f"first image {i}: {int(got[i])} vs torch {int(ref[i])}")


@pytest.mark.parametrize("name, export", list(_cases()))
def test_imported_brevitas_model_gives_torchs_labels(name, export, digits, tmp_path):
    path = zoo.export(name, tmp_path, EXPORTS[export])
    x = zoo.model_input(name, digits.x_test)
    out = zoo.torch_outputs(name, x)
    ref, mask = out.argmax(axis=1), zoo.untied(out)
    assert mask.sum() >= 0.9 * len(x), f"{name}: {int((~mask).sum())} tied images"

    res = import_onnx(path, **zoo.import_kwargs(name))
    problems = [
        _first_disagreement("ImportResult.predict", res.predict(x), ref, mask),
        _first_disagreement("the integer graph", res.graph.predict(res.encode(x)), ref, mask),
    ]
    problems = [p for p in problems if p]
    assert not problems, f"{name} ({export}): " + "; ".join(problems)
