"""KPI formulas and the A/B test, against values computed independently."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from scipy.stats import chi2_contingency, norm

from tracker import metrics
from tracker.models import Counts


@pytest.mark.parametrize(
    ("p1", "p2", "published"),
    [
        (0.10, 0.15, 686),  # the textbook example: 10 % vs 15 %, 5 % two-sided, 80 % power
        (0.20, 0.25, 1094),
        (0.50, 0.75, 58),
    ],
)
def test_sample_size_per_group(p1: float, p2: float, published: int) -> None:
    assert metrics.sample_size(p1, p2) == published
    assert metrics.sample_size(p2, p1) == published  # the direction does not matter


def test_sample_size_follows_the_formula_with_scipy_quantiles() -> None:
    rng = random.Random(7)
    for _ in range(200):
        p1, p2 = rng.uniform(0.01, 0.6), rng.uniform(0.01, 0.6)
        za, zb, mean = norm.ppf(0.975), norm.ppf(0.8), (p1 + p2) / 2
        n = (za * (2 * mean * (1 - mean)) ** 0.5 + zb * (p1 * (1 - p1) + p2 * (1 - p2)) ** 0.5) ** 2
        exact = n / (p1 - p2) ** 2
        got = metrics.sample_size(p1, p2)
        assert got is not None and got - 1 < exact <= got


def test_p_values_equal_scipys_chi_square_without_correction() -> None:
    # The pooled two-proportion z-test is the 2x2 chi-square test (z^2 = chi^2).
    rng = random.Random(3)
    for _ in range(300):
        n1, n2 = rng.randint(5, 5000), rng.randint(5, 5000)
        x1, x2 = rng.randint(1, n1 - 1), rng.randint(1, n2 - 1)
        _, expected, _, _ = chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)
        result = metrics.compare(x1, n1, x2, n2)
        assert result.p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)
        assert result.significant is bool(expected < 0.05)


def test_comparison_fields() -> None:
    result = metrics.compare(100, 1000, 150, 1000)
    assert (result.control, result.variant) == (0.1, 0.15)
    assert result.lift == pytest.approx(0.05)
    assert result.relative_lift == pytest.approx(0.5)
    assert result.significant is True
    assert result.more_recipients_needed is None  # significant: nothing more needed
    small = metrics.compare(10, 100, 15, 100)
    assert small.significant is False
    assert small.recipients_needed == 686
    assert small.more_recipients_needed == 2 * (686 - 100)


@pytest.mark.parametrize(
    ("args", "p_value"),
    [
        ((0, 0, 5, 10), None),  # no control recipients
        ((5, 10, 0, 0), None),
        ((0, 10, 0, 10), None),  # nobody clicked anywhere: no variance
        ((10, 10, 10, 10), None),  # everybody did
    ],
)
def test_comparisons_without_data_are_null_not_errors(args: tuple[int, ...], p_value: None) -> None:
    result = metrics.compare(*args)
    assert result.p_value is p_value
    assert result.significant is False


def test_zero_control_rate_has_no_relative_lift() -> None:
    result = metrics.compare(0, 50, 5, 50)
    assert result.lift == 0.1 and result.relative_lift is None


@pytest.mark.parametrize(
    ("values", "p50", "p90"),
    [
        ([], None, None),
        ([7], 7, 7),
        ([1, 2], 1, 2),
        ([1, 2, 3, 4, 5], 3, 5),
        (list(range(1, 11)), 5, 9),
        (list(range(1, 101)), 50, 90),
    ],
)
def test_nearest_rank_percentiles(values: list[int], p50: int | None, p90: int | None) -> None:
    histogram: dict[int, int] = {}
    for v in values:
        histogram[v] = histogram.get(v, 0) + 1
    assert metrics.histogram_percentile(histogram, 50) == p50
    assert metrics.histogram_percentile(histogram, 90) == p90


def test_every_rate_with_a_zero_denominator_is_null() -> None:
    kpis = metrics.kpis(
        Counts(), base_is_delivered=False, cost_per_message=Decimal("0.05"), currency="EUR"
    )
    rates = ("delivery_rate", "ctr", "conversion_rate", "click_conversion_rate", "roi",
             "opt_out_rate", "cost_per_conversion")  # fmt: skip
    assert all(kpis[name] is None for name in rates)
    assert kpis["cost"] == {"amount": "0.00", "currency": "EUR"}


def test_roi_needs_all_revenue_in_the_cost_currency() -> None:
    counts = Counts(issued=100, conversions=2, revenue={"EUR": Decimal("15.00")})
    kpis = metrics.kpis(
        counts, base_is_delivered=False, cost_per_message=Decimal("0.05"), currency="EUR"
    )
    assert kpis["cost"] == {"amount": "5.00", "currency": "EUR"}
    assert kpis["roi"] == 2.0  # (15 - 5) / 5
    assert kpis["cost_per_conversion"] == {"amount": "2.5000", "currency": "EUR"}
    counts.revenue["USD"] = Decimal(1)
    mixed = metrics.kpis(
        counts, base_is_delivered=False, cost_per_message=Decimal("0.05"), currency="EUR"
    )
    assert mixed["roi"] is None
    no_revenue = metrics.kpis(
        Counts(issued=10), base_is_delivered=False, cost_per_message=Decimal(1), currency="EUR"
    )
    assert no_revenue["roi"] == -1.0  # spent, nothing back
    free = metrics.kpis(counts, base_is_delivered=False, cost_per_message=None, currency=None)
    assert free["cost"] is None and free["roi"] is None


def test_counts_add_up() -> None:
    one = Counts(issued=1, human_clicks=2, revenue={"EUR": Decimal("1.10")})
    one.add(
        Counts(issued=2, unique_clickers=1, revenue={"EUR": Decimal("0.90"), "USD": Decimal(3)})
    )
    assert one == Counts(
        issued=3,
        human_clicks=2,
        unique_clickers=1,
        revenue={"EUR": Decimal("2.00"), "USD": Decimal(3)},
    )


def test_histogram_percentiles_match_sorting_the_values() -> None:
    rng = random.Random(2)
    for _ in range(100):
        values = sorted(rng.randint(0, 30) for _ in range(rng.randint(1, 60)))
        histogram: dict[int, int] = {}
        for v in values:
            histogram[v] = histogram.get(v, 0) + 1
        for p in (1, 50, 90, 99, 100):
            rank = max(1, -(-p * len(values) // 100))  # nearest rank: ceil(p% of n)
            assert metrics.histogram_percentile(histogram, p) == values[rank - 1]
    assert metrics.histogram_percentile({}, 50) is None
