"""Issue 19 through the Python API and ``lowbit run``: ``lowbit.load`` of a DAG model (the
residual block of tests/test_dag_cli.py), ``Model.compile(target_fps=)`` and the compiled design's
fast-path check (bit-exact, measured cycles per image == the DAG mapper's) and build; what takes chains only
yet (``Model.map``, ``lowbit run``) refuses naming the DAG node."""

from __future__ import annotations

import numpy as np
import pytest

import lowbit
from lowbit import LowbitError
from lowbit.cli.app import main
from test_dag_cli import _residual


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return _residual().save(tmp_path_factory.mktemp("dag_api") / "res.npz")


@pytest.mark.fast_sim
def test_compile_and_simulate_a_dag_from_the_api(model, tmp_path):
    m = lowbit.load(model)
    compiled = m.compile(tmp_path / "out", board="pynq-z2", target_fps=25e6)
    assert compiled.design.is_dag and compiled.cycles_per_image == 4
    x = np.random.default_rng(0).integers(0, 4, size=(30, 4))
    sim = compiled.simulate(x)
    assert sim.bit_exact and sim.mismatch is None and sim.label_mismatches == 0
    assert (sim.labels == m.predict(x)).all()
    assert sim.cycles_per_image_measured == 4 and sim.cycles_per_image_predicted == 4
    # the Vivado plan for the board it was compiled for (a DAG's schedule names none)
    plan = compiled.build(tmp_path / "plan")
    assert plan.flow == "vivado" and plan.manifest["cycles_per_image"] == 4


def test_what_takes_chains_only_names_the_dag_node(model, tmp_path, capsys):
    with pytest.raises(LowbitError, match=r"^Model\.map: the model is a DAG \(node 'add'\)"):
        lowbit.load(model).map()
    _residual().save(tmp_path / "res.npz")
    cfg = tmp_path / "flow.yaml"
    cfg.write_text("name: res\nmodel: res.npz\nboard: pynq-z2\n")
    assert main(["run", str(cfg), "-o", str(tmp_path / "run")]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "the model is a DAG (node 'add'); 'lowbit run' takes chains only yet" in (
        err + "".join(p.read_text() for p in (tmp_path / "run" / "logs").glob("*map.log")))
