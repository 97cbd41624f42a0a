"""bench/ab.py's variant syntax, the revisions it takes, and its summary of the runs."""

import argparse

import pytest

from bench.ab import Variant, is_commit, parse_variant, schedule, summary

GRID = [(float(p), float(p * 100)) for p in range(1, 101)]  # percentile p at 100 p µs


def test_a_variant_is_a_name_a_revision_and_settings() -> None:
    assert parse_variant("now=HEAD") == Variant("now", "HEAD", {})
    variant = parse_variant("nofold=HEAD~2;TRACKER_ROLLUP_SECONDS=0;TRACKER_X=a=b")
    assert (variant.name, variant.revision) == ("nofold", "HEAD~2")
    assert variant.env == {"TRACKER_ROLLUP_SECONDS": "0", "TRACKER_X": "a=b"}


@pytest.mark.parametrize(
    "text",
    [
        "HEAD",
        "=HEAD",
        "now=",
        "now=HEAD;NOVALUE",
        "now=HEAD;=1",
        "a/b=HEAD",  # a name is part of file names
        "now.db=HEAD",
        "now=HEAD;TRACKER_CLICK_DURABILITY=fast",  # --mode's, for every variant
    ],
)
def test_a_malformed_variant_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_variant(text)


def test_only_commits_of_this_repository_are_revisions() -> None:
    assert is_commit("HEAD")
    assert not is_commit("no-such-revision")


def test_each_round_rotates_the_order_by_one() -> None:
    assert schedule(["a", "b", "c"], 4) == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]
    assert schedule(["a"], 2) == [["a"], ["a"]]


def _run(rate: int, errors: dict[str, int] | None = None) -> dict:
    """A wrk run's figures as bench/redirect.py's ``wrk`` returns them: 2 s at ``rate``."""
    return {
        "req_per_s": rate,
        "requests": rate * 2,
        "grid": GRID,
        "p99_ms": 9.9,
        "max_ms": 10.0,
        "statuses": {302: rate * 2},
        "socket_errors": errors or {},
    }


def test_the_summary_takes_each_run_against_its_own_ceilings() -> None:
    variant = Variant("now", "HEAD", {})
    for rate in (5_000, 9_000, 6_000):
        variant.runs.append(_run(rate, {"timeout": 3} if rate == 9_000 else None))
    # Against 10 000 req/s each time, the second run would be the best; against its own
    # ceiling (the machine was fast then), it is the worst. The ceiling runs between are
    # those around the other variants' runs in the A/B.
    ceilings = [_run(rate) for rate in (10_000, 99, 10_000, 30_000, 99, 30_000, 10_000, 10_000)]
    result = summary(variant, ceilings, [(0, 2), (3, 5), (6, 7)])
    assert result["ratios"] == [0.5, 0.3, 0.6]
    assert result["ratio"] == 0.5
    assert result["ratio_range"] == [0.3, 0.6]
    assert result["req_per_s"] == 6_000
    assert result["p99_ms"] == pytest.approx(9.9)
    assert result["socket_errors"] == {"timeout": 3}
    assert "server_running" not in result
