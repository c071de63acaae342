"""ClassMap: the exact per-class map of a model's tail, against hand-worked values.

``from_fractions`` (common denominator, gcd reduction, offset shift, ``None`` for the identity),
then ``apply`` / ``decide`` on int64 and on Python-int (object) values, ``value_range`` / ``bits``,
the JSON round trip and the error messages.
"""

from fractions import Fraction

import numpy as np
import pytest

from lowbit.ir.boundary import MAX_CLASS_MAP_BITS, ClassMap

# -- from_fractions -------------------------------------------------------------------------------


def test_common_denominator():
    # 1/2 s and 1/3 s: times lcm(2, 3) = 6 -> 3 s and 2 s; gcd(3, 2) = 1
    cm = ClassMap.from_fractions([Fraction(1, 2), Fraction(1, 3)], [0, 0])
    assert (cm.mult, cm.offset) == ((3, 2), (0, 0))


def test_common_denominator_of_scales_and_offsets():
    # s / 4 + 1/6 and s / 2: lcm(4, 6, 2) = 12 -> 3 s + 2 and 6 s + 0; gcd(3, 6, 2) = 1
    cm = ClassMap.from_fractions([Fraction(1, 4), Fraction(1, 2)], [Fraction(1, 6), 0])
    assert (cm.mult, cm.offset) == ((3, 6), (2, 0))


def test_gcd_reduction():
    # 2 s + 6 and 4 s: gcd(2, 4, 6, 0) = 2 -> s + 3 and 2 s
    cm = ClassMap.from_fractions([2, 4], [6, 0])
    assert (cm.mult, cm.offset) == ((1, 2), (3, 0))


def test_offset_shift():
    # s + 5 and s + 7: the common 5 never changes the decision -> offsets 0 and 2
    cm = ClassMap.from_fractions([1, 1], [5, 7])
    assert (cm.mult, cm.offset) == ((1, 1), (0, 2))
    # negative offsets shift up to a minimum of 0 as well: -3, -1, -2 -> 0, 2, 1
    cm = ClassMap.from_fractions([1, 1, 1], [-3, -1, -2])
    assert cm.offset == (0, 2, 1)


def test_identity_maps_are_none():
    assert ClassMap.from_fractions([Fraction(3, 7)] * 3, [2, 2, 2]) is None
    assert ClassMap.from_fractions([0.25, 0.25], [-1.5, -1.5]) is None
    # the same scale for every class but a negative one reverses the order: not the identity
    cm = ClassMap.from_fractions([-1, -1], [0, 0])
    assert (cm.mult, cm.offset) == ((-1, -1), (0, 0))


def test_negative_scales():
    # -s/2 + 1 and s/4: times 4 -> -2 s + 4 and s
    cm = ClassMap.from_fractions([Fraction(-1, 2), Fraction(1, 4)], [1, 0])
    assert (cm.mult, cm.offset) == ((-2, 1), (4, 0))
    # scores (1, 3): mapped (2, 3) -> class 1; scores (-3, 2): mapped (10, 2) -> class 0
    assert cm.apply([[1, 3], [-3, 2]]).tolist() == [[2, 3], [10, 2]]
    assert cm.decide([[1, 3], [-3, 2]]).tolist() == [1, 0]


def test_float_scales_are_taken_exactly():
    # 0.1 is not 1/10 in binary: the map keeps the float's exact value
    cm = ClassMap.from_fractions([0.1, 0.2], [0, 0])
    assert Fraction(cm.mult[1], cm.mult[0]) == Fraction(0.2) / Fraction(0.1)
    assert (cm.mult, cm.offset) == ((1, 2), (0, 0))  # 0.2 == 2 * 0.1 exactly in binary


# -- apply and decide -----------------------------------------------------------------------------


def test_apply_and_decide_hand_worked():
    cm = ClassMap((2, 1, -3), (0, 0, 1))
    mapped = cm.apply([[3, 5, -2]])
    assert mapped.dtype == np.int64
    assert mapped.tolist() == [[6, 5, 7]]  # 2*3, 1*5, -3*-2 + 1
    assert cm.decide([[3, 5, -2]]).tolist() == [2]  # the raw argmax would be class 1
    assert cm.decide(np.array([3, 5, -2])).tolist() == 2


def test_ties_go_to_the_lowest_index():
    cm = ClassMap((2, 1), (0, 2))
    # (1, 2) -> (2, 4): class 1; (2, 2) -> (4, 4): a tie, class 0; (0, -2) -> (0, 0): class 0
    assert cm.decide([[1, 2], [2, 2], [0, -2]]).tolist() == [1, 0, 0]
    cm = ClassMap((1, 1, 1), (0, 3, 3))
    assert cm.decide([[5, 2, 2]]).tolist() == [0]    # (5, 5, 5)
    assert cm.decide([[4, 2, 2]]).tolist() == [1]    # (4, 5, 5): the lower of the tied two


def test_big_values_are_python_ints():
    cm = ClassMap((2**100, 1), (0, 2**120))
    mapped = cm.apply([[1, 0], [2**20, 0], [2**21, 0], [-(2**21), 5]])
    assert mapped.dtype == object
    assert mapped.tolist() == [[2**100, 2**120], [2**120, 2**120], [2**121, 2**120],
                               [-(2**121), 2**120 + 5]]
    # 2^100 < 2^120: class 1; a tie at 2^120: class 0; 2^121 > 2^120: class 0
    assert cm.decide([[1, 0], [2**20, 0], [2**21, 0], [-(2**21), 5]]).tolist() == [1, 0, 0, 1]
    # int64 arithmetic would wrap here; the exact decision differs from a float one too
    cm = ClassMap((1, 1), (2**62, 2**62 + 1))
    assert cm.apply([[1, 0]]).dtype == object
    assert cm.decide([[1, 0]]).tolist() == [0]          # 2^62 + 1 vs 2^62 + 1: a tie
    assert cm.decide([[0, 0]]).tolist() == [1]
    assert float(2**62) == float(2**62 + 1)             # float64 could not tell them apart


def test_value_range_and_bits():
    cm = ClassMap((2, -3), (0, 5))
    # scores in [-4, 3]: 2 s in [-8, 6], -3 s + 5 in [-4, 17]
    assert cm.value_range(-4, 3) == (-8, 17)
    assert cm.bits(-4, 3) == 6       # [-32, 31] holds [-8, 17]; [-16, 15] does not
    assert ClassMap((1, 1), (0, 0)).bits(0, 1) == 2    # [0, 1] in two's complement: 2 bits
    assert ClassMap((2**100, 1), (0, 0)).bits(-1, 1) == 102


def test_json_round_trip():
    cm = ClassMap((3, -2**200), (2**90, 0))
    assert ClassMap.from_json(cm.to_json()) == cm
    assert cm.to_json() == {"mult": [3, -2**200], "offset": [2**90, 0]}


def test_errors():
    with pytest.raises(ValueError, match=r"^class map: mult has 2 entries and offset 1; "):
        ClassMap((1, 2), (0,))
    with pytest.raises(ValueError, match=r"^class map: mult must be a non-empty sequence of "
                                         r"integers$"):
        ClassMap((), ())
    with pytest.raises(ValueError, match=r"^class map: offset must be a non-empty sequence of "
                                         r"integers$"):
        ClassMap((1,), (0.5,))
    with pytest.raises(ValueError, match=rf"^class map: mult needs more than "
                                         rf"{MAX_CLASS_MAP_BITS} bits; "):
        ClassMap((2**MAX_CLASS_MAP_BITS, 1), (0, 0))
    ClassMap((2**MAX_CLASS_MAP_BITS - 1, 1), (0, 0))  # the widest allowed
    with pytest.raises(ValueError, match=r"^scores must have 2 classes on the last axis, "
                                         r"not shape \(1, 3\)$"):
        ClassMap((1, 2), (0, 0)).apply([[1, 2, 3]])
    with pytest.raises(ValueError, match=r"^class_map must be an object with 'mult' and "
                                         r"'offset' lists$"):
        ClassMap.from_json({"mult": [1]})
