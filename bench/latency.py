"""One latency distribution from several wrk runs.

Each run reports how many requests it made and its latency at a grid of percentiles
(`bench/wrk/codes.lua`). A percentile of all the runs together is the smallest latency
below which that share of all their requests fell: each run counts, at a latency x, the
share of its grid at or under x (a step function, so never more than it really had), and
the runs are weighed by their requests. Conservative: the merged figure is never lower than
the exact one, and for a single run it is that run's own figure.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

Grid = Sequence[tuple[float, float]]  # (percentile, latency), percentiles ascending


def merged_percentile(runs: Sequence[tuple[int, Grid]], percentile: float) -> float:
    """The latency at ``percentile`` (0 to 100) of all ``runs``' requests together."""
    total = sum(count for count, _ in runs)
    if total <= 0:
        raise ValueError("no requests to merge")
    steps = [(count, [v for _, v in grid], [p / 100 for p, _ in grid]) for count, grid in runs]
    wanted = percentile / 100 * total * (1 - 1e-12)

    def under(latency: float) -> float:
        """Requests known to be at or under ``latency``."""
        done = 0.0
        for count, values, shares in steps:
            at = bisect_right(values, latency)
            done += count * (shares[at - 1] if at else 0.0)
        return done

    candidates = sorted({value for _, values, _ in steps for value in values})
    low, high = 0, len(candidates) - 1  # the share under the last candidate is the grid's top
    while low < high:
        middle = (low + high) // 2
        if under(candidates[middle]) >= wanted:
            high = middle
        else:
            low = middle + 1
    return candidates[low]
