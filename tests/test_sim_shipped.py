"""The cocotb check of a compiled directory simulates the Verilog the directory ships (issue 21):
nothing is elaborated again, and a file changed after ``lowbit compile`` is refused, naming it."""

import numpy as np
import pytest

import lowbit.sim.accel_sim as accel_sim
from lowbit import LowbitError
from lowbit.flow import compile_model, simulate_compiled
from lowbit.ir import DataType


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    from conftest import _random_graph

    graph = _random_graph(np.random.default_rng(7), sizes=(12, 8, 4), in_dtype=DataType.uint(3))
    out = tmp_path_factory.mktemp("shipped") / "design"
    compile_model(graph, out, board="pynq-z2", budget=0.05)
    return graph, out


@pytest.mark.cocotb
def test_the_shipped_verilog_is_simulated_without_elaborating_again(compiled, monkeypatch):
    graph, out = compiled

    def no_elaboration(*args, **kwargs):
        raise AssertionError("simulate_compiled elaborated the design again")

    monkeypatch.setattr(accel_sim, "write_verilog", no_elaboration)
    x = np.random.default_rng(3).integers(0, 8, (10, 12))
    sim = simulate_compiled(out, x, throttled_images=4, seeds=(1,))
    assert sim.ok and sim.mismatches == 0
    assert sim.verilog == str((out / "lowbit_top.v").resolve())
    assert list(sim.labels) == graph.predict(x).tolist()


def test_a_verilog_changed_after_compile_is_refused(compiled, tmp_path):
    import shutil

    _, out = compiled
    copy = tmp_path / "design"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("sim"))
    with open(copy / "lowbit_top.v", "a") as f:
        f.write("// edited by hand\n")
    x = np.zeros((2, 12), dtype=np.int64)
    with pytest.raises(LowbitError, match=r"lowbit_top\.v: changed since 'lowbit compile'"):
        simulate_compiled(copy, x)
    assert not (copy / "sim").exists()  # refused before anything was written
