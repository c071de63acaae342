"""Randomised regression on the fast path: the bounded profile for ``make test``.

The long profile (>= 200 configurations, and the shrinking of a broken component to a minimal
configuration) is ``benchmarks/regression.py``.
"""

import pytest
from hypothesis import HealthCheck, given, settings

from lowbit.sim.regress import EngineConfig, check_config, engine_configs, flip_adder_bit

pytestmark = pytest.mark.fast_sim


@pytest.fixture(scope="module", autouse=True)
def _private_cache(private_verilator_cache):
    """Every module builds its Verilated models in its own cache (no reuse across test runs)."""


@settings(max_examples=4, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(cfg=engine_configs(max_mw=12, max_mh=6))
def test_random_engine_configurations_are_bit_exact(cfg):
    result = check_config(cfg)
    assert not result.timed_out, cfg
    assert result.mismatches == 0, f"{cfg}: first mismatch (vector, output, got, expected) = {result.first}"
    if result.cycles_per_vector is not None:
        assert result.cycles_per_vector == result.expected_cycles == cfg.spec().cycles()


def test_flipped_adder_bit_is_caught():
    cfg = EngineConfig(mw=8, mh=4, pe=2, simd=4, input="UINT3", output="scores", density=0.5, seed=7)
    broken = check_config(cfg, mutate=flip_adder_bit)
    assert broken.mismatches > 0 and broken.first is not None
    vector, output, got, expected = broken.first
    assert got != expected
    assert check_config(cfg).ok
