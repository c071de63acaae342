"""Golden outputs: the Verilog a fixed set of designs generates and the integer graphs fixed seeds
export, each reduced to a SHA-256 (tinygrad's "process replay").

A refactor must leave every hash unchanged (``tests/test_golden.py``). An intentional change to
generated hardware or to an exporter updates ``tests/golden_hashes.json`` with

    .venv/bin/python tests/golden.py --update

and says in its commit message which designs changed and why.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from amaranth.hdl import signed, unsigned

# -- the library's names under test (the only lines a move of modules edits) --
from lowbit.deploy.openflow import uart_shell_verilog
from lowbit.deploy.simbackend import shell_wrapper_verilog
from lowbit.deploy.vivado import WeightPort, axis_adapter_verilog, control_verilog, fetcher_verilog
from lowbit.flow.steps import zoo_schedule
from lowbit.hw.top import Accelerator
from lowbit.hw.stream.dwc import StreamWidthConverter
from lowbit.hw.verilog import to_verilog
from lowbit.hw.stream.fifo import FIFOSpec
from lowbit.hw.stream.label import LabelSelect
from lowbit.hw.stream.pool import AccPoolSpec, MaxPoolSpec
from lowbit.hw.sparse.layer_spec import SparseLayerSpec
from lowbit.hw.sparse.engine_spec import SparseEngineSpec
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.hw.stream.swg import SWGSpec
from lowbit.hw.stream.threshold import ThresholdSpec
from lowbit.mapping import search_folding
from lowbit.quant import builtin
from lowbit.ir import (BIPOLAR, TERNARY, DataType, GlobalAccPool, IntegerGraph, Kind, MatMulThreshold,
                       MaxPool, SlidingWindow)
from lowbit.quant.onnx.importer import import_onnx
from lowbit.sw_reference.sparse import encode_sparse

HASHES = Path(__file__).with_name("golden_hashes.json")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def graph_sha(graph) -> str:
    """Content hash of an integer graph: its ``.npz`` header and arrays, independent of the zip
    container's timestamps and compression."""
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory() as d:
        path = graph.save(Path(d) / "g.npz")
        h = hashlib.sha256()
        with np.load(path, allow_pickle=False) as z:
            for name in sorted(z.files):
                a = z[name]
                h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
                h.update(np.ascontiguousarray(a).tobytes())
        with zipfile.ZipFile(path) as zf:
            assert sorted(n.removesuffix(".npy") for n in zf.namelist()) == sorted(z.files)
    return h.hexdigest()


# -- designs -------------------------------------------------------------------------------------

def _rng(seed: int = 2024):
    return np.random.default_rng(seed)


def _weights(rng, dtype, shape):

    if dtype.kind is Kind.BIPOLAR:
        return rng.integers(0, 2, shape)
    if dtype.kind is Kind.POW2:
        mag = np.where(rng.random(shape) < 0.2, 0, 1 << rng.integers(0, dtype.max_exponent + 1, shape))
        return mag * rng.choice([-1, 1], shape)
    return rng.integers(dtype.min, dtype.max + 1, shape)


def _node(rng, in_dtype, w_dtype, mw=12, mh=6, n_thr=1, name="fc"):

    w = _weights(rng, w_dtype, (mh, mw))
    probe = MatMulThreshold(name, in_dtype, w, None, weight_dtype=w_dtype)
    if n_thr is None:
        return probe
    lo, hi = probe.acc_range
    t = np.sort(rng.integers(lo, hi + 2, (mh, n_thr)), axis=1)
    out = BIPOLAR if n_thr == 1 else DataType.uint(n_thr.bit_length())
    return MatMulThreshold(name, in_dtype, w, t, out, weight_dtype=w_dtype)


def _mvtu(in_dtype, w_dtype, n_thr=1, **kw):

    return to_verilog(MVTUSpec(_node(_rng(), in_dtype, w_dtype, n_thr=n_thr), pe=3, simd=4, **kw).create(),
                      name="unit")


def mvtu_xnor():
    return _mvtu(BIPOLAR, BIPOLAR)


def mvtu_addsub():
    return _mvtu(DataType.uint(3), BIPOLAR, n_thr=3)


def mvtu_ternary():
    return _mvtu(DataType.int(3), TERNARY)


def mvtu_shift():
    return _mvtu(DataType.uint(3), DataType.pow2(4), n_thr=None)


def mvtu_multibit():
    return _mvtu(DataType.uint(2), DataType.int(2), n_thr=3)


def mvtu_multibit_serial():
    return _mvtu(DataType.int(4), DataType.int(4), n_thr=None, mac="serial")


def mvtu_external_weights():
    return _mvtu(DataType.uint(3), BIPOLAR, weight_ram="external")


def swg():
    return to_verilog(SWGSpec(SlidingWindow("s", 3, 2, 1, 7), (5, 6, 4), DataType.uint(3), 2).create(), name="unit")


def maxpool():
    return to_verilog(MaxPoolSpec(MaxPool("p", 2), (6, 4, 6), DataType.uint(3), 3).create(), name="unit")


def accpool():
    return to_verilog(AccPoolSpec(GlobalAccPool("g", BIPOLAR), (3, 3, 4), BIPOLAR, 2).create(), name="unit")


def fifo():
    return to_verilog(FIFOSpec(DataType.uint(3), 2, 8).create(), name="unit")


def threshold():
    t = np.sort(_rng().integers(-8, 8, (4, 3)), axis=1)
    return to_verilog(ThresholdSpec(t, DataType.int(4), 2).create(), name="unit")


def dwc():

    return to_verilog(StreamWidthConverter(unsigned(2), n_in=3, n_out=2), name="unit")


def label_select():

    return to_verilog(LabelSelect(signed(5), classes=6, pe=2, top_k=2), name="unit")


def sparse_engine():
    rng = _rng()
    idx = rng.integers(1, 16, (23, 13)) * (rng.random((23, 13)) < 0.3)
    cb = np.concatenate([[0], rng.integers(-128, 128, 15)])
    spec = SparseEngineSpec(rows=23, cols=13, pes=4, depth=2, lanes=3, entries_per_word=2, shift=2,
                            relu=True, out_bits=12, image=encode_sparse(idx, cb, 4))
    return to_verilog(spec.create(), name="unit")


def _sparse_mlp():
    rng = _rng(7)
    nodes, dt = [], DataType.uint(4)
    sizes = (32, 48, 10)
    for k, (mw, mh) in enumerate(zip(sizes, sizes[1:])):
        w = rng.integers(-7, 8, (mh, mw)) * (rng.random((mh, mw)) < 0.1)
        last = k == len(sizes) - 2
        probe = MatMulThreshold(f"fc{k}", dt, w, None, weight_dtype=DataType.int(4))
        if last:
            nodes.append(probe)
        else:
            lo, hi = probe.acc_range
            nodes.append(MatMulThreshold(f"fc{k}", dt, w, np.sort(rng.integers(lo, hi + 2, (mh, 1)), axis=1),
                                         BIPOLAR, weight_dtype=DataType.int(4)))
            dt = BIPOLAR
    return IntegerGraph(DataType.uint(4), tuple(nodes))


def sparse_layer():
    return to_verilog(SparseLayerSpec(_sparse_mlp().nodes[0], pes=4, lanes=4).create(), name="unit")


def _demo_graph():
    rng = _rng(0)
    nodes, dt = [], DataType.uint(5)
    sizes = (64, 256, 256, 10)
    for k, (mw, mh) in enumerate(zip(sizes, sizes[1:])):
        w = rng.integers(0, 2, (mh, mw))
        if k == len(sizes) - 2:
            nodes.append(MatMulThreshold(f"fc{k}", dt, w, None))
        else:
            lo, hi = MatMulThreshold("probe", dt, w, None).acc_range
            nodes.append(MatMulThreshold(f"fc{k}", dt, w, rng.integers(lo, hi + 2, (mh, 1))))
            dt = BIPOLAR
    return IntegerGraph(DataType.uint(5), tuple(nodes))


def _top(graph, board, budget=None, schedule=None, ddr_bits=None):
    if schedule is None:
        schedule = search_folding(graph, board, **({} if budget is None else {"budget": budget}))
    return to_verilog(Accelerator(schedule.apply(graph), ddr_bits_per_cycle=ddr_bits))


def demo_accelerator():
    """The demo's network shape (64-256-256-10, 5-bit pixels) at the demo's 5 % of a PYNQ-Z2."""
    return _top(_demo_graph(), "pynq-z2", budget=0.05)


def sparse_accelerator():
    """A pruned INT4 MLP the mapper places on the sparse engine."""
    return _top(_sparse_mlp(), "pynq-z2", budget=0.05)


def ddr_sim_top():
    """An accelerator whose middle layer streams its weights from DDR, with the DDR model."""
    g = _demo_graph()
    specs = [MVTUSpec(n, pe=4, simd=16, weight_ram="external" if i == 1 else "auto") for i, n in enumerate(g.nodes[:2])]
    specs.append(MVTUSpec(g.nodes[2], pe=2, simd=16))
    return to_verilog(Accelerator(specs, ddr_bits_per_cycle=56))


def cnv_w1a1():
    """CNV-W1A1 from the built-in models, random weights from seed 0, its published folding."""
    m = builtin.build("cnv-w1a1", seed=0)
    return _top(m.graph, "ultra96-v2", schedule=zoo_schedule("cnv-w1a1", m.graph, m.matmul_folding))


def zynq_shell():
    """The Vivado plan's shell: AXI-Stream adapter, control block and two weight fetchers."""
    ports = [WeightPort(0, 1, 64, 48, 64, 32), WeightPort(1, 2, 96, 20, 128, 40)]
    return "\n".join([axis_adapter_verilog(21, 40, 3, ports), control_verilog(3, 2), fetcher_verilog(ports)])


def uart_shell():
    return uart_shell_verilog(320, 40, 12e6)


def simulated_shell():
    return shell_wrapper_verilog(32, 64, [{"index": 0, "unit": 1, "word_bits": 64, "words": 48,
                                           "data_bits": 64, "addr_bits": 32}], rate=56)


DESIGNS = {f.__name__.replace("_", "-"): f for f in (
    mvtu_xnor, mvtu_addsub, mvtu_ternary, mvtu_shift, mvtu_multibit, mvtu_multibit_serial,
    mvtu_external_weights, swg, maxpool, accpool, fifo, threshold, dwc, label_select, sparse_engine,
    sparse_layer, demo_accelerator, sparse_accelerator, ddr_sim_top, cnv_w1a1, zynq_shell, uart_shell,
    simulated_shell)}


# -- integer graphs ------------------------------------------------------------------------------

def graph_cnv_w1a1():
    return builtin.build("cnv-w1a1", seed=0).graph


def graph_cnv_w2a2():
    return builtin.build("cnv-w2a2", seed=1, width=0.25).graph


def graph_lfc_w1a1():
    return builtin.build("lfc-w1a1", seed=0, width=0.25).graph


def _onnx(builder_name):
    def f():
        import tempfile

        import onnx

        sys.path.insert(0, str(Path(__file__).parent))
        import onnx_models
        model = getattr(onnx_models, builder_name)(np.random.default_rng(0))
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "m.onnx"
            onnx.save(model, p)
            return import_onnx(p).graph
    f.__name__ = "graph_onnx_" + builder_name
    return f


GRAPHS = {
    "graph-cnv-w1a1": graph_cnv_w1a1,
    "graph-cnv-w2a2": graph_cnv_w2a2,
    "graph-lfc-w1a1": graph_lfc_w1a1,
    "graph-onnx-qonnx-mlp": _onnx("qonnx_mlp"),
    "graph-onnx-qonnx-cnn": _onnx("qonnx_cnn"),
    "graph-onnx-conv-stride": _onnx("m_conv_stride"),
    "graph-onnx-trunc": _onnx("m_trunc"),
    "graph-onnx-xnor": _onnx("m_xnor"),
    "graph-onnx-qdq-mlp": _onnx("qdq_mlp"),
    "graph-sparse-mlp": _sparse_mlp,
    "graph-demo-shape": _demo_graph,
}


def _report(graph, board, budget):
    schedule = search_folding(graph, board, budget=budget)
    return json.dumps({"schedule": json.loads(schedule.to_json()), "report": schedule.report(graph)}, sort_keys=True,
                      default=str)


REPORTS = {
    "report-demo-shape": lambda: _report(_demo_graph(), "pynq-z2", 0.05),
    "report-sparse-mlp": lambda: _report(_sparse_mlp(), "pynq-z2", 0.05),
    "report-cnv-w1a1": lambda: _report(graph_cnv_w1a1(), "pynq-z2", 0.8),
}
"""The mapper's schedule and report (resources, cycles, placement) for fixed graphs."""


def compute(name: str) -> str:
    if name in REPORTS:
        return sha(REPORTS[name]())
    if name in DESIGNS:
        return sha(DESIGNS[name]())
    return graph_sha(GRAPHS[name]())


def load() -> dict[str, str]:
    return json.loads(HASHES.read_text())


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/golden.py --update")
    hashes = {name: compute(name) for name in [*DESIGNS, *GRAPHS, *REPORTS]}
    HASHES.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(hashes)} hashes to {HASHES}")
