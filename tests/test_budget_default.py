"""One default budget per board for every folding search (issue 21): ``lowbit map``, ``compile``
and ``run`` search on an open-flow board within the share ``lowbit build`` uses
(``mapping.buildsize.default_budget``: 0.1 on ulx3s-85f), Zynq boards keep 0.7, and their help says
so. No test here runs yosys."""

import json
import re

import pytest
from mapping_models import digits_mlp

from lowbit.boards import get_board
from lowbit.cli._options import BUDGET_DEFAULT
from lowbit.cli.app import build_parser, main
from lowbit.mapping import DEFAULT_BUDGET
from lowbit.mapping.buildsize import OPEN_FLOW_LUT6, default_budget
from lowbit.pipeline import SCHEMA


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "mlp.npz"
    digits_mlp(seed=3).save(path)
    return path


def _map(model, capsys, *extra):
    assert main(["map", str(model), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_model_folds_differently_at_the_two_budgets(model, capsys):
    """The premise of the tests below: at 0.1 and 0.7 of ulx3s-85f the mapper chooses different
    foldings of this model."""
    small = _map(model, capsys, "--board", "ulx3s-85f", "--budget", "0.1")
    large = _map(model, capsys, "--board", "ulx3s-85f", "--budget", "0.7")
    assert small["cycles_per_image"] > large["cycles_per_image"]


def test_map_on_an_open_flow_board_defaults_to_builds_budget(model, capsys):
    assert default_budget(get_board("ulx3s-85f")) == 0.1
    default = _map(model, capsys, "--board", "ulx3s-85f")
    assert default == _map(model, capsys, "--board", "ulx3s-85f", "--budget", "0.1")
    # a Zynq board keeps 0.7
    assert _map(model, capsys) == _map(model, capsys, "--budget", "0.7")


class _Stop(Exception):
    pass


def test_compile_on_an_open_flow_board_defaults_to_builds_budget(model, tmp_path, monkeypatch):
    """The budget compile searches with (compile_model stopped there: generating the Verilog
    takes long and is the same for a given schedule)."""
    import lowbit.flow

    budgets = []

    def compile_model(graph, out, *, board, schedule, budget, target_fps=None, clock_mhz=None):
        assert target_fps is None and clock_mhz is None  # no --target-fps, no --clock here
        budgets.append((board, schedule, budget))
        raise _Stop

    monkeypatch.setattr(lowbit.flow, "compile_model", compile_model)
    for board in ("ulx3s-85f", "icebreaker", "pynq-z2"):
        with pytest.raises(_Stop):
            main(["compile", str(model), "-o", str(tmp_path / "c"), "--board", board])
    with pytest.raises(_Stop):  # an explicit budget wins
        main(["compile", str(model), "-o", str(tmp_path / "c"), "--board", "ulx3s-85f",
              "--budget", "0.3"])
    assert budgets == [("ulx3s-85f", None, 0.1), ("icebreaker", None, 0.7),
                       ("pynq-z2", None, 0.7), ("ulx3s-85f", None, 0.3)]


def test_run_on_an_open_flow_board_defaults_to_builds_budget(model, tmp_path):
    (tmp_path / "mlp.npz").write_bytes(model.read_bytes())  # the config names files beside it

    def cycles(budget):
        cfg = tmp_path / f"run{budget}.yaml"
        cfg.write_text(
            "model: mlp.npz\nboard: ulx3s-85f\n"
            + ("" if budget is None else f"budget: {budget}\n")
            + "steps: [import, map]\n"
        )
        assert main(["run", str(cfg), "-o", str(tmp_path / f"out{budget}")]) == 0
        return json.loads((tmp_path / f"out{budget}" / "schedule.json").read_text())

    assert cycles(None) == cycles(0.1) != cycles(0.7)


def test_the_help_states_the_rule():
    """The help text's numbers are the rule's (``BUDGET_DEFAULT`` is written out for a fast
    ``lowbit --help``)."""
    assert f"default {DEFAULT_BUDGET:g};" in BUDGET_DEFAULT
    assert f"{OPEN_FLOW_LUT6:,} LUT6-eq" in BUDGET_DEFAULT
    assert f"({default_budget(get_board('ulx3s-85f')):g} on ulx3s-85f)" in BUDGET_DEFAULT
    sub = next(a for a in build_parser()._actions if a.choices and "map" in a.choices).choices
    for command in ("map", "compile", "build"):
        helps = [a.help for a in sub[command]._actions if "--budget" in a.option_strings]
        assert len(helps) == 1 and BUDGET_DEFAULT in helps[0], command
    run_help = [a.help for a in sub["run"]._actions if a.dest == "config"][0]
    assert BUDGET_DEFAULT in run_help
    assert re.search(r"0\.1 on ulx3s-85f", SCHEMA["properties"]["budget"]["description"])


def test_the_api_and_compile_model_follow_the_same_rule(model, tmp_path, monkeypatch):
    """``lowbit.load(...).map()`` and :func:`lowbit.flow.compile_model` without a budget search
    within the rule's share, as the command line does; ``target_fps`` keeps 0.7 (as ``lowbit map
    --target-fps``)."""
    import lowbit
    import lowbit.api
    import lowbit.flow.steps

    budgets = []

    def search(graph, board, *, budget, **kw):
        budgets.append((board, budget))
        raise _Stop

    m = lowbit.load(model)
    monkeypatch.setattr(lowbit.api, "search_folding", search)
    for board in ("ulx3s-85f", "icebreaker", "pynq-z2"):
        with pytest.raises(_Stop):
            m.map(board)
    with pytest.raises(_Stop):
        m.map("ulx3s-85f", target_fps=1000.0)
    with pytest.raises(_Stop):
        m.map("ulx3s-85f", 0.3)
    monkeypatch.setattr(lowbit.flow.steps, "search_folding", search)
    with pytest.raises(_Stop):
        m.compile(tmp_path / "c", board="ulx3s-85f")
    with pytest.raises(_Stop):
        lowbit.flow.compile_model(m.graph, tmp_path / "d", board="icebreaker")
    assert budgets == [("ulx3s-85f", 0.1), ("icebreaker", 0.7), ("pynq-z2", 0.7),
                       ("ulx3s-85f", DEFAULT_BUDGET), ("ulx3s-85f", 0.3), ("ulx3s-85f", 0.1),
                       ("icebreaker", 0.7)]
