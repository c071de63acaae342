"""Issue 7: the folding search on CNV-W1A1 for pynq-z2 at 80 % of each resource."""

from lowbit.mapping import search_folding
from lowbit.quant.builtin import build, published_bottleneck

BNN_PYNQ_PYNQ_Z1 = {"lut": 26_072, "bram36": 124, "dsp": 24}
"""BNN-PYNQ's cnvW1A1 on a Pynq-Z1 (Vivado 2018.2), from its README."""


def test_search_beats_the_published_folding_within_80_percent():
    graph = build("cnv-w1a1").graph
    schedule = search_folding(graph, "pynq-z2", budget=0.8)
    report = schedule.report(graph)
    published_cycles, _ = published_bottleneck("cnv-w1a1")
    # Same clock for both: the predicted throughput is at least the published folding's.
    assert report["cycles_per_image"] <= published_cycles
    for kind, v in report["resources"].items():
        assert v["used"] <= 0.8 * v["available"], kind
    print(f"CNV-W1A1 on pynq-z2 at 80 %: {report['cycles_per_image']:,} cycles/image "
          f"(BNN-PYNQ folding: {published_cycles:,}); estimated "
          f"{report['resources']['lut']['used']:,.0f} LUT, {report['resources']['bram36']['used']:g} BRAM36, "
          f"{report['resources']['dsp']['used']:g} DSP (BNN-PYNQ on Pynq-Z1: {BNN_PYNQ_PYNQ_Z1})")
