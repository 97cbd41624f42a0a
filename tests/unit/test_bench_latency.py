"""The merge of several wrk runs' latency grids into one distribution (bench/latency.py)."""

import pytest

from bench.latency import merged_percentile

GRID = [(float(p), float(p * 10)) for p in range(1, 101)]  # percentile p at 10 p µs


def test_one_run_gives_its_own_percentiles() -> None:
    runs = [(1000, GRID)]
    assert merged_percentile(runs, 50) == 500
    assert merged_percentile(runs, 99) == 990


def test_alike_runs_merge_to_the_same_distribution() -> None:
    assert merged_percentile([(1000, GRID), (3000, GRID)], 99) == 990


def test_runs_are_weighed_by_their_requests() -> None:
    fast = [(p, 1.0) for p, _ in GRID]  # every request 1 µs
    slow = [(p, 100.0) for p, _ in GRID]  # every request 100 µs
    # Half the requests at 1 µs: the median is 1 µs and the 99th percentile 100 µs.
    assert merged_percentile([(500, fast), (500, slow)], 50) == 1
    assert merged_percentile([(500, fast), (500, slow)], 99) == 100
    # 99.5 % of them at 1 µs: now the 99th percentile is 1 µs too.
    assert merged_percentile([(995, fast), (5, slow)], 99) == 1
    assert merged_percentile([(985, fast), (15, slow)], 99) == 100


def test_a_bad_tail_in_one_run_lifts_the_merged_tail() -> None:
    tail = [(p, 10.0 if p <= 97 else 5000.0) for p, _ in GRID]  # 3 % of requests stalled
    calm = [(p, 10.0) for p, _ in GRID]
    # 1 run in 4 with 3 % stalled: 0.75 % of all requests, under the 1 % of a p99.
    assert merged_percentile([(1000, tail), (3000, calm)], 99) == 10
    # 1 run in 2: 1.5 %, so the p99 is a stall.
    assert merged_percentile([(1000, tail), (1000, calm)], 99) == 5000


def test_no_requests_is_an_error() -> None:
    with pytest.raises(ValueError):
        merged_percentile([(0, GRID)], 99)
