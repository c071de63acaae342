"""The cycle model against BNN-PYNQ's published foldings and measured times (BNN_PYNQ_FOLDING.md).

A convolution is an MVTU with ``MW = K*K*IFM_CH`` and ``MH = OFM_CH`` that takes one vector per output
pixel (``OFM_DIM ** 2``); the pipeline's time per image is its bottleneck over the clock.
"""

import numpy as np
import pytest
from mapping_models import random_node

from lowbit.boards import get_board
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.mapping import input_stream_cycles, layer_cycles, output_stream_cycles
from lowbit.mapping.dataflow_model import BNN_PYNQ_LFC_W1A1_LAYERS, bnn_pynq_lfc_w1a1, simulate_pipeline
from lowbit.ir import BIPOLAR, DataType

CLOCK_MHZ = 299.0  # Ultra96, as measured
# K, IFM_CH, OFM_DIM, OFM_CH for the six convolutions, then MW, MH of the three fc layers
CNV_CONV = [(3, 3, 30, 64), (3, 64, 28, 64), (3, 64, 12, 128), (3, 128, 10, 128), (3, 128, 3, 256), (3, 256, 1, 256)]
CNV_FC = [(256, 512), (512, 512), (512, 64)]
FOLDING = {  # (SIMD, PE) for L0..L8, from config.h
    "W1A1": [(3, 16), (32, 32), (32, 16), (32, 16), (32, 4), (32, 1), (4, 1), (8, 1), (1, 4)],
    "W2A2": [(3, 8), (16, 16), (16, 8), (16, 8), (8, 4), (8, 1), (2, 1), (2, 2), (1, 4)],
}
MEASURED_US = {"W1A1": 109.29, "W2A2": 387.55}


def cnv_layers(variant: str):
    """(spec, vectors per image) for the nine layers of CNV-W1A1 or CNV-W2A2 with random weights."""
    rng = np.random.default_rng(3)
    act = BIPOLAR if variant == "W1A1" else DataType.uint(2)
    n_thr = 1 if variant == "W1A1" else 3
    shapes = [(k * k * c, oc, od * od) for k, c, od, oc in CNV_CONV] + [(mw, mh, 1) for mw, mh in CNV_FC]
    layers = []
    for i, ((mw, mh, vectors), (simd, pe)) in enumerate(zip(shapes, FOLDING[variant])):
        dtype = DataType.uint(8) if i == 0 else act
        node = random_node(rng, f"L{i}", mw, mh, dtype, 0 if i == 8 else n_thr)
        layers.append((MVTUSpec(node, pe=pe, simd=simd), vectors))
    return layers


@pytest.mark.parametrize("variant", ["W1A1", "W2A2"])
def test_cnv_time_per_image_within_one_percent(variant):
    cycles = [layer_cycles(spec, vectors) for spec, vectors in cnv_layers(variant)]
    bottleneck = max(cycles)
    assert bottleneck == {"W1A1": 32_768, "W2A2": 115_200}[variant]
    predicted_us = bottleneck / CLOCK_MHZ
    assert abs(predicted_us - MEASURED_US[variant]) / MEASURED_US[variant] < 0.01
    # the published per-layer figures, exactly
    expected = {"W1A1": [32_400, 28_224, 20_736, 28_800, 20_736, 18_432, 32_768, 32_768, 8_192],
                "W2A2": [64_800, 112_896, 82_944, 115_200, 82_944, 73_728, 65_536, 65_536, 8_192]}[variant]
    assert cycles == expected


def lfc_w1a1():
    rng = np.random.default_rng(4)
    table = [(832, 1024, 64, 32), (1024, 1024, 32, 64), (1024, 1024, 64, 32), (1024, 64, 8, 16)]
    return [MVTUSpec(random_node(rng, f"L{i}", mw, mh, BIPOLAR, 0 if i == 3 else 1), pe=pe, simd=simd)
            for i, (mw, mh, simd, pe) in enumerate(table)]


def test_lfc_io_model_does_not_explain_the_measured_time():
    """LFC-W1A1: compute bottleneck 512 cycles (1.71 us at 299 MHz), measured 2.80 us batched.

    The honest stream model (832 input bits per image at SIMD = 64 bits per cycle, under the 128-bit
    ZynqMP AXI-HP port; 64 scores of 12 bits out through the same width) needs 13 and 6 cycles per
    image, far below the 512-cycle compute bottleneck: moving the data in and out cannot be what
    limits LFC, and the bottleneck-only model is 39 % fast.

    What it misses is the coupling through BNN-PYNQ's shallow FIFOs (``top.cpp``: ``inter0..2`` of
    depth ``512 / PE`` = 16, 8, 16 words, where a layer emits ``MH / PE`` = 32, 16, 32 words per
    image) in front of finn-hlslib's single-buffered MVAU, which reads its whole input vector in its
    first neuron fold. L1 must read L0's 32 words in its first fold, but only 16 fit in ``inter0``;
    the other 16 come at L0's rate of one per 13 cycles. The stream-coupled model
    (:mod:`lowbit.mapping.dataflow_model`, every process and stream of ``top.cpp``, no fitted constant)
    gives 723 cycles per image: 2.42 us, 13.6 % under the measured 2.80 us — still outside the 10 %
    target, and reported as is. With the depths the source's comment asks for (``MH / PE``) it is
    back to 512.

    Provenance of the measurement: BNN-PYNQ's ``notebooks/LFC-QNN_MNIST.ipynb`` (output committed
    2019-02-21, 10,000 MNIST images in one call, 28,040 us for W1A1 and for W1A2 alike) on the
    Ultra96 bitstream of 2018-09-28 ("Closing timing @300 MHz", commit 1e5552f; ``pl_clk2`` 299 MHz in
    its ``.hwh``). That commit's ``top.cpp`` and in-tree HLS library have the same processes,
    stream depths and MVAU loop as modelled here, and the timed region is the accelerator run only
    (``TRANSFER_EXCL``: the host copies are outside it), so nothing on the host side is missing.
    """
    specs = lfc_w1a1()
    port = get_board("ultra96-v2").axi_hp_width_bits
    assert port == 128
    compute = [s.cycles() for s in specs]
    assert compute == [416, 512, 512, 512]
    assert input_stream_cycles(specs[0], port) == 13          # 832 bits, SIMD=64 bits per cycle (port 128)
    assert output_stream_cycles(specs[-1], port) == 6         # 64 scores of 12 bits = 768 bits / 128
    bottleneck = max(compute + [input_stream_cycles(specs[0], port), output_stream_cycles(specs[-1], port)])
    predicted_us = bottleneck / CLOCK_MHZ
    assert round(predicted_us, 2) == 1.71
    error = abs(predicted_us - 2.80) / 2.80
    assert 0.38 < error < 0.40  # outside the 10 % target: reported, not fudged

    # the stream-coupled model of the same accelerator, with the FIFO depths of top.cpp
    stages, fifos = bnn_pynq_lfc_w1a1()
    layers = {s.name: s for s in stages}
    assert [layers[f"L{i}"].cycles for i in range(4)] == compute  # same folding as the MVTU specs
    assert [f.depth for f in fifos] == [1024, 16, 8, 16, 2, 2, 1024]
    timing = simulate_pipeline(stages, fifos)
    assert timing.periodic and timing.bound == 512
    assert timing.period == 723
    predicted_us = timing.period / CLOCK_MHZ
    assert round(predicted_us, 2) == 2.42
    error = (predicted_us - 2.80) / 2.80
    assert round(error, 3) == -0.136  # closer, still outside the 10 % target: reported, not fudged
    # L1 waits for L0's second 16 words in its first neuron fold: starved or blocked 211 cycles per image
    assert timing.stalls["L1"] == (166, 45)
    assert timing.stalls["L0"] == (0, 307)

    # the depths MH / PE (32, 16, 32) restore the bottleneck; all-2 FIFOs make it worse
    mh_pe = [mh // pe for _, mh, _, pe in BNN_PYNQ_LFC_W1A1_LAYERS[:3]]
    assert mh_pe == [32, 16, 32]
    assert simulate_pipeline(*bnn_pynq_lfc_w1a1(mh_pe)).period == 512
    assert simulate_pipeline(*bnn_pynq_lfc_w1a1((2, 2, 2))).period == 915


# -- the built-in models with their published foldings, through the schedule ---------------------

@pytest.mark.parametrize("name", ["cnv-w1a1", "cnv-w2a2"])
def test_zoo_cnv_schedule_predicts_the_published_bottleneck(name):
    """The whole conv graph (windows, pools, products) under the published folding: the schedule's
    bottleneck is BNN-PYNQ's (32,768 / 115,200 cycles) and, at 299 MHz, within 1 % of the measured
    time per image (109.29 / 387.55 us)."""
    from lowbit.flow.steps import zoo_schedule
    from lowbit.quant import builtin as zoo

    model = zoo.build(name)
    schedule = zoo_schedule(name, model.graph, model.matmul_folding, "ultra96-v2")
    report = schedule.report(model.graph)
    published, measured_us = zoo.published_bottleneck(name)
    assert report["cycles_per_image"] == published
    matmul_cycles = [layer["cycles"] for layer in report["layers"] if layer["op"] == "MatMulThreshold"]
    expected = {"cnv-w1a1": [32_400, 28_224, 20_736, 28_800, 20_736, 18_432, 32_768, 32_768, 8_192],
                "cnv-w2a2": [64_800, 112_896, 82_944, 115_200, 82_944, 73_728, 65_536, 65_536, 8_192]}[name]
    assert matmul_cycles == expected
    # windows and pools are never the bottleneck: each takes at most its product's cycles
    assert all(layer["cycles"] < published for layer in report["layers"] if layer["op"] != "MatMulThreshold")
    us = published / CLOCK_MHZ
    assert round(us, 1) == {"cnv-w1a1": 109.6, "cnv-w2a2": 385.3}[name]
    assert abs(us - measured_us) / measured_us < 0.01
