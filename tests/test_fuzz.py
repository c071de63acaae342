"""Issue 17's fuzzer, bounded profile: malformed ONNX models, lowbit model files, schedules, build
manifests, flag values and build configs (lowbit run) through the command line (``tests/fuzzing.py``). Every case exits 0, or
2 with a short message naming what is wrong, never a traceback, a hang or an unbounded allocation,
and leaves nothing at the output path; the long profile is ``benchmarks/fuzz.py``."""

import fuzzing
import pytest
from hypothesis import HealthCheck, given, settings

EXAMPLES = {"onnx": 30, "graph": 25, "schedule": 5, "manifest": 15, "flag": 15, "config": 15}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return fuzzing.make_seeds(tmp_path_factory.mktemp("fuzz-seeds"))


@pytest.mark.parametrize("target", sorted(EXAMPLES))
def test_every_malformed_input_is_refused_cleanly(target, seeds):
    failures = []

    @settings(max_examples=EXAMPLES[target], deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=fuzzing.cases(seeds, (target,)))
    def check(case):
        outcome = fuzzing.run_case(case)
        if outcome.problems:
            failures.append(f"{case.mutation} {' '.join(case.argv)}: {'; '.join(outcome.problems)}"
                            f"\n    {outcome.stderr.strip().splitlines()[-1:] }")

    check()
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:20])
