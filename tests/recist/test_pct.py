"""``recist.target.pct``: the percentage shown beside a sum (change from baseline and
from the nadir, R-TGT-PR's share) is always ``round(n * 100 / d, 1)``, bit for bit,
its sign of zero included, although it rounds most values without ``round``."""

from __future__ import annotations

import math
import struct

from hypothesis import given
from hypothesis import strategies as st

from recist.lesions import UNITS_PER_MM
from recist.target import pct


def reference(numerator: int, denominator: int) -> float:
    return round(numerator * 100 / denominator, 1)


def bits(value: float) -> bytes:
    """The float's exact bits: tells 0.0 from -0.0, and any two neighbours apart."""
    return struct.pack("<d", value)


def test_every_change_between_sums_up_to_100_mm_in_tenths():
    """Every pair of sums 0.1 to 100 mm in steps of 0.1 mm, as the engine's lengths
    (UNITS_PER_MM a mm): ties, near-ties and small negative changes included."""
    step = UNITS_PER_MM // 10
    mismatches = []
    for base in range(step, 100 * UNITS_PER_MM + 1, 7 * step):
        for total in range(0, 100 * UNITS_PER_MM + 1, step):
            for numerator in (total - base, total):
                if bits(pct(numerator, base)) != bits(reference(numerator, base)):
                    mismatches.append((numerator, base))
    assert mismatches == []


def test_ties_and_signed_zero():
    cases = [
        (1, 2000),  # 0.05: a tie in decimal, not in binary
        (-1, 2000),
        (3, 2000),  # 0.15
        (-3, 2000),
        (1, 20),  # 5.0
        (-1, 3000),  # -0.0333…: rounds to -0.0
        (0, 7),
        (1, 3),
        (-2, 3),
        (25, 1000),  # 2.5
        (-25, 1000),
        (1, 8000),  # 0.0125
    ]
    for numerator, denominator in cases:
        expected = reference(numerator, denominator)
        assert bits(pct(numerator, denominator)) == bits(expected), (numerator, denominator)
    assert math.copysign(1.0, pct(-1, 3000)) == -1.0  # -0.0, as round gives


def test_very_large_shares_use_round():
    """Beyond ±10⁵ %, where the fast path stops (a nadir of a few µm), and huge integers."""
    for numerator, denominator in [(10**9, 3), (-(10**9), 7), (10**30 + 1, 10**20), (7, 1)]:
        assert bits(pct(numerator, denominator)) == bits(reference(numerator, denominator))


@given(
    st.integers(min_value=-(10**10), max_value=10**10),
    st.integers(min_value=1, max_value=10**10),
)
def test_equals_round_for_any_pair(numerator, denominator):
    assert bits(pct(numerator, denominator)) == bits(reference(numerator, denominator))


@given(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from([2, 4, 8, 16, 20, 40, 80, 200, 400, 800, 2000, 4000, 8000, 20000]),
)
def test_equals_round_where_decimal_ties_are_common(numerator, denominator):
    """Denominators that make quotients of few binary digits: many land on or beside a
    tie in tenths."""
    assert bits(pct(numerator, denominator)) == bits(reference(numerator, denominator))
