"""The stream-coupled cycle model (:mod:`lowbit.mapping.dataflow_model`): hand-worked cases first,
then properties on random chains, then FIFO sizing and errors."""

import random
from fractions import Fraction

import pytest

from lowbit.mapping.dataflow_model import (Buffering, Fifo, PipelineTiming, Stage, bnn_pynq_lfc_w1a1,
                                           min_fifo_depths, simulate_pipeline)

# -- hand-worked cases ---------------------------------------------------------------------------


def test_copy_stage_full_rate_with_depth_2():
    """source -> S(sf=1, nf=1) -> sink, FIFOs of depth 2: the source writes word k in cycle k, S
    reads and writes it in k + 1, the sink reads it in k + 2. One image (one word) per cycle."""
    timing = simulate_pipeline([Stage("S", 1, 1)], [2, 2], images=4)
    assert isinstance(timing, PipelineTiming)
    assert timing.completion == (2, 3, 4, 5)
    assert timing.period == 1 and timing.periodic and timing.bound == 1
    assert timing.stalls == {"S": (0, 0)}


def test_copy_stage_half_rate_with_depth_1():
    """Same with depth 1: a slot freed in cycle t is seen by the writer in t + 1, so each FIFO passes
    one word every two cycles. The sink reads word k in cycle 2 + 2k; S is starved one cycle per word."""
    timing = simulate_pipeline([Stage("S", 1, 1)], [Fifo(1), Fifo(1)], images=4)
    assert timing.completion == (2, 4, 6, 8)
    assert timing.period == 2
    assert timing.stalls == {"S": (1, 0)}


def test_single_buffered_consumer_behind_a_shallow_fifo():
    """P(sf=1, nf=2) writes 2 words per image, one per cycle; C(sf=2, nf=2) reads both in its first
    neuron fold and reuses them in the second: 4 cycles, the bound.

    Depth 1 between them: C reads word a in cycle t; P sees the free slot in t + 1 and writes a + 1,
    which C reads in t + 2 — C starves one cycle in its first fold. Its second fold (2 cycles)
    follows at once; P, blocked since its next write, gets the slot C freed at t + 2 in t + 3, so the
    next vector's first word is there when C wants it in t + 5. Period 3 + 2 = 5; P stalls
    5 - 2 = 3 cycles per image, all blocked. The first image: P writes word 0 in cycle 1, C reads it
    in 2, starves in 3, reads word 1 and writes output 0 in 4, output 1 in 6; the sink reads it in 7.

    Depth 2 = P's words per vector: C never starves, period 4 (P blocked 2 cycles per image)."""
    stages = [Stage("P", 1, 2), Stage("C", 2, 2)]
    shallow = simulate_pipeline(stages, [2, 1, 2], images=4)
    assert shallow.completion == (7, 12, 17, 22)
    assert shallow.period == 5 and shallow.bound == 4
    assert shallow.stalls == {"P": (0, 3), "C": (1, 0)}
    assert shallow.bottleneck == "C"
    deep = simulate_pipeline(stages, [2, 2, 2], images=4)
    assert deep.period == 4
    assert deep.stalls == {"P": (0, 2), "C": (0, 0)}


def test_double_buffered_consumer_hides_the_shallow_fifo():
    """The same pair with C double-buffered (lowbit's MVTU): through a depth-1 FIFO its input side
    loads a vector (2 words) in 4 cycles while the compute side runs the previous one (4 cycles), so
    the period is the bound, 4."""
    timing = simulate_pipeline([Stage("P", 1, 2), Stage("C", 2, 2, "double")], [2, 1, 2], images=4)
    assert timing.period == 4
    assert timing.stalls["C"] == (0, 0)


def test_width_converter_in_the_stage_or_as_its_own_process():
    """A 2:1 down-sizer merged into C (in_ratio=2) or written as its own process Stage(sf=1, nf=2)
    with a depth-2 FIFO: with deep FIFOs both reach C's 8 cycles per image."""
    merged = [Stage("P", 2, 2), Stage("C", 4, 2, in_ratio=2)]
    split = [Stage("P", 2, 2), Stage("dwc", 1, 2, vectors=2), Stage("C", 4, 2)]
    assert merged[1].in_words == 2 and merged[1].cycles == 8
    assert simulate_pipeline(merged, [4, 4, 4]).period == 8
    assert simulate_pipeline(split, [4, 4, 2, 4]).period == 8


# -- properties on random chains -----------------------------------------------------------------


def _chain(rng: random.Random, buffering: str, n: int) -> list[Stage]:
    stages, words = [], rng.randint(1, 6)
    for k in range(n):
        ratio = rng.choice([1, 1, 2]) if buffering == "single" else 1
        nf = rng.randint(1, 6)
        stages.append(Stage(f"s{k}", words * ratio, nf, buffering, in_ratio=ratio))
        words = nf
    return stages


CHAINS = [(seed, random.Random(seed).randint(1, 4)) for seed in range(40)]


@pytest.mark.parametrize("seed,n", CHAINS)
def test_double_buffered_reaches_the_bound_with_depth_2(seed, n):
    rng = random.Random(seed)
    stages = _chain(rng, "double", n)
    depths = [rng.randint(2, 5) for _ in range(n + 1)]
    timing = simulate_pipeline(stages, depths)
    assert timing.periodic
    assert timing.period == timing.bound
    assert timing.bound == max([s.cycles for s in stages] + [stages[0].in_words, stages[-1].out_words])


@pytest.mark.parametrize("seed,n", CHAINS)
def test_single_buffered_reaches_the_bound_when_a_fifo_holds_the_producers_vector(seed, n):
    """A FIFO of at least the producer's words per vector (its NF), and at least 2, never costs time."""
    stages = _chain(random.Random(seed), "single", n)
    depths = [2] + [max(2, s.nf) for s in stages[:-1]] + [2]
    assert simulate_pipeline(stages, depths).period == simulate_pipeline(stages, depths).bound


@pytest.mark.parametrize("seed,n", CHAINS)
def test_period_never_grows_with_depth(seed, n):
    rng = random.Random(1000 + seed)
    stages = _chain(rng, rng.choice(["single", "double"]), n)
    depths = [rng.randint(1, 4) for _ in range(n + 1)]
    periods = []
    for extra in range(4):
        periods.append(simulate_pipeline(stages, [d + extra for d in depths]).period)
        k = rng.randrange(n + 1)
        deeper = list(depths)
        deeper[k] += 1
        assert simulate_pipeline(stages, deeper).period <= simulate_pipeline(stages, depths).period
    assert periods == sorted(periods, reverse=True)
    assert all(p >= simulate_pipeline(stages, depths).bound for p in periods)


def _cycle_by_cycle(stages, depths, images):
    """Reference: every process every cycle, straight from the module docstring's rules (no event
    skipping, no extrapolation). Returns the sink's completion cycles."""
    count = [0] * len(depths)
    it = [0] * len(stages)             # single: loop iteration; double: compute-side iteration
    load = [0] * len(stages)           # double: input words loaded
    banks = [0] * len(stages)          # double: full banks
    src = snk = 0
    done, t = [], 0
    while len(done) < images:
        delta, dbanks = [0] * len(depths), [0] * len(stages)
        if count[0] < depths[0]:
            delta[0] += 1
            src += 1
        for k, s in enumerate(stages):
            per_vec = s.sf * s.nf
            lagged = it[k] - (s.latency - 1)  # the iteration in the output stage
            write = lagged >= 0 and lagged % s.sf == s.sf - 1
            if s.buffering is Buffering.SINGLE:
                v, j = divmod(it[k], per_vec)
                read = j < s.sf and (v * s.sf + j) % s.in_ratio == 0
                if (not read or count[k] > 0) and (not write or count[k + 1] < depths[k + 1]):
                    delta[k] -= read
                    delta[k + 1] += write
                    it[k] += 1
            else:
                if banks[k] < 2 and (load[k] % s.in_ratio or count[k] > 0):
                    delta[k] -= load[k] % s.in_ratio == 0
                    dbanks[k] += load[k] % s.sf == s.sf - 1
                    load[k] += 1
                j = it[k] % per_vec
                if (j or banks[k] > 0) and (not write or count[k + 1] < depths[k + 1]):
                    delta[k + 1] += write
                    dbanks[k] -= j == per_vec - 1
                    it[k] += 1
        if count[-1] > 0:
            delta[-1] -= 1
            snk += 1
            if snk % stages[-1].out_words == 0:
                done.append(t)
        count = [c + d for c, d in zip(count, delta)]
        banks = [b + d for b, d in zip(banks, dbanks)]
        t += 1
    return tuple(done)


@pytest.mark.parametrize("seed,n", CHAINS[:20])
def test_event_skipping_equals_cycle_by_cycle(seed, n):
    rng = random.Random(3000 + seed)
    stages = _chain(rng, rng.choice(["single", "double"]), n)
    depths = [rng.randint(1, 4) for _ in range(n + 1)]
    assert simulate_pipeline(stages, depths, images=12).completion == _cycle_by_cycle(stages, depths, 12)


@pytest.mark.parametrize("seed,n", CHAINS[20:])
def test_event_skipping_equals_cycle_by_cycle_with_pipeline_latency(seed, n):
    rng = random.Random(4000 + seed)
    stages = [Stage(s.name, s.sf, s.nf, s.buffering, in_ratio=s.in_ratio, latency=rng.randint(1, 7))
              for s in _chain(rng, rng.choice(["single", "double"]), n)]
    depths = [rng.randint(1, 4) for _ in range(n + 1)]
    assert simulate_pipeline(stages, depths, images=12).completion == _cycle_by_cycle(stages, depths, 12)


def test_pipeline_latency_delays_the_first_result_not_a_decoupled_period():
    """One copy stage: latency L delays the first word by L - 1 cycles; with room in the FIFOs the
    period stays one word per cycle."""
    for lat in (1, 2, 5):
        timing = simulate_pipeline([Stage("c", 1, 1, latency=lat)], [2, 2], images=4)
        assert timing.period == 1
        assert timing.completion[0] == 2 + (lat - 1)  # source t=0, stage t=1 (+ lag), sink next cycle


def test_event_skipping_equals_cycle_by_cycle_on_lfc():
    stages, fifos = bnn_pynq_lfc_w1a1()
    depths = [f.depth for f in fifos]
    assert simulate_pipeline(stages, depths, images=6).completion == _cycle_by_cycle(stages, depths, 6)


def test_completions_extrapolate_exactly():
    """Once the state repeats, later completions are extrapolated; they equal a longer run's."""
    stages, fifos = bnn_pynq_lfc_w1a1()
    short = simulate_pipeline(stages, fifos, images=30)
    assert short.periodic and short.simulated_images < 30
    assert all(b - a == short.period for a, b in zip(short.completion[5:], short.completion[6:]))


def test_period_is_exact_type():
    timing = simulate_pipeline([Stage("P", 1, 2), Stage("C", 2, 2)], [2, 1, 2])
    assert type(timing.period) is int
    assert Fraction(timing.period) == 5


# -- FIFO sizing ---------------------------------------------------------------------------------


def _assert_individually_minimal(stages, depths):
    assert simulate_pipeline(stages, depths).period == simulate_pipeline(stages, depths).bound
    for k, d in enumerate(depths):
        if d > 1:
            smaller = list(depths)
            smaller[k] = d - 1
            timing = simulate_pipeline(stages, smaller)
            assert timing.period > timing.bound, (k, depths)


def test_lfc_period_does_not_depend_on_the_mvau_pipeline_depth_up_to_12():
    """BNN-PYNQ LFC-W1A1 with the published depths: 723 cycles whether the MVAU loops are 1 or 12
    stages deep (the HLS pipeline depth is not known here, so this insensitivity matters)."""
    stages, fifos = bnn_pynq_lfc_w1a1()
    for lat in (1, 4, 8, 12):
        deep = [Stage(s.name, s.sf, s.nf, s.buffering, s.in_ratio, s.vectors, lat if s.name.startswith("L") else 1)
                for s in stages]
        assert simulate_pipeline(deep, fifos).period == 723


def test_min_fifo_depths_hand_case():
    """P(sf=1, nf=2) -> C(sf=2, nf=2): depth 1 costs a cycle per image (above), depth 2 does not;
    the source and sink FIFOs may be 1 (2 words per 4 cycles)."""
    stages = [Stage("P", 1, 2), Stage("C", 2, 2)]
    assert min_fifo_depths(stages) == (1, 2, 1)
    assert min_fifo_depths([Stage("P", 1, 2), Stage("C", 2, 2, Buffering.DOUBLE)]) == (1, 1, 1)


@pytest.mark.parametrize("seed,n", CHAINS[:12])
def test_min_fifo_depths_reach_the_bound_and_one_less_does_not(seed, n):
    rng = random.Random(2000 + seed)
    stages = _chain(rng, rng.choice(["single", "double"]), n)
    _assert_individually_minimal(stages, min_fifo_depths(stages))


def test_min_fifo_depths_lfc():
    """BNN-PYNQ LFC-W1A1: the published inter0..2 (16, 8, 16) are short of 29, 15, 23 words."""
    stages, fifos = bnn_pynq_lfc_w1a1()
    depths = min_fifo_depths(stages)
    assert depths == (1, 29, 15, 23, 2, 1, 1)
    _assert_individually_minimal(stages, depths)
    assert min_fifo_depths(stages, start=fifos[:1] + (32, 16, 32) + fifos[4:]) == depths


# -- errors --------------------------------------------------------------------------------------


def test_stage_errors():
    with pytest.raises(ValueError, match=r"^sf must be at least 1, not 0$"):
        Stage("x", 0, 1)
    with pytest.raises(TypeError, match=r"^nf must be an integer, not 1\.5$"):
        Stage("x", 1, 1.5)
    with pytest.raises(TypeError, match=r"^vectors must be an integer, not True$"):
        Stage("x", 1, 1, vectors=True)
    with pytest.raises(ValueError, match=r"^buffering must be 'single' or 'double', not 'triple'$"):
        Stage("x", 1, 1, "triple")
    with pytest.raises(TypeError, match=r"^buffering must be a Buffering or a string, not 2$"):
        Stage("x", 1, 1, 2)
    with pytest.raises(ValueError, match=r"^in_ratio \(4\) must divide sf \* vectors \(6 \* 1\) of stage 'x'$"):
        Stage("x", 6, 1, in_ratio=4)
    with pytest.raises(TypeError, match=r"^name must be a string, not 3$"):
        Stage(3, 1, 1)
    with pytest.raises(ValueError, match=r"^latency must be at least 1, not 0$"):
        Stage("x", 1, 1, latency=0)
    with pytest.raises(ValueError, match=r"^depth must be at least 1, not 0$"):
        Fifo(0)
    assert Stage("x", 1, 1, "double").buffering is Buffering.DOUBLE


def test_simulate_errors():
    a, b = Stage("a", 1, 3), Stage("b", 2, 1)
    with pytest.raises(ValueError, match=r"^stage 'a' writes 3 words per image \(nf \* vectors\) but stage 'b' "
                                         r"reads 2 \(sf \* vectors / in_ratio\)$"):
        simulate_pipeline([a, b], [2, 2, 2])
    with pytest.raises(ValueError, match=r"^depths must hold len\(stages\) \+ 1 = 2 FIFO depths \(source, "
                                         r"between stages, sink\), not 3$"):
        simulate_pipeline([a], [2, 2, 2])
    with pytest.raises(ValueError, match=r"^depths\[1\] must be at least 1, not 0$"):
        simulate_pipeline([a], [2, 0])
    with pytest.raises(TypeError, match=r"^stages\[0\] must be a Stage, not 'a'$"):
        simulate_pipeline(["a"], [2, 2])
    with pytest.raises(ValueError, match=r"^stages must hold at least one Stage, not \[\]$"):
        simulate_pipeline([], [2])
    with pytest.raises(ValueError, match=r"^images must be at least 1, not 0$"):
        simulate_pipeline([a], [2, 2], images=0)
    with pytest.raises(ValueError, match=r"^start depths \(1, 1\) do not reach the bound of 3 cycles per image$"):
        min_fifo_depths([Stage("s", 1, 3)], start=[1, 1])
    with pytest.raises(ValueError, match=r"^inter_depths must hold 3 depths \(inter0\.\.2\), not 2$"):
        bnn_pynq_lfc_w1a1((16, 8))
