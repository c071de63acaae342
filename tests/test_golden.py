"""Behaviour pinned across refactors: the SHA-256 of the Verilog that a fixed set of designs
generates (every MAC kind, every dataflow block, the sparse engine and layer, the demo-shaped and
DDR-streaming accelerators, CNV-W1A1 at its published folding, the Zynq, UART and simulated shells)
and of the integer graphs that fixed seeds export (built-in models, ONNX imports).

A move of code changes none of them. An intentional change updates ``tests/golden_hashes.json``
with ``python tests/golden.py --update`` and names the changed designs and the reason in its
commit message.
"""

import pytest

import golden

EXPECTED = golden.load()


def test_the_pinned_set_is_the_generated_set():
    assert sorted(EXPECTED) == sorted([*golden.DESIGNS, *golden.GRAPHS, *golden.REPORTS])
    assert len(golden.DESIGNS) >= 12


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_output_is_unchanged(name):
    assert golden.compute(name) == EXPECTED[name], (
        f"{name}: generated output changed; if intended, run 'python tests/golden.py --update' "
        "and give the reason in the commit message")
