"""Interleaved A/B of the redirect: tracker variants against each other and the ceiling.

A variant is a git revision of this repository (its ``tracker`` package and ``migrations``,
taken with ``git archive``; ``.`` is the working tree as it is), with environment settings
if any: ``NAME=REV[;VAR=VALUE]...`` (quote it for the shell). Each variant's server runs on
its own copy of one database of ``--links`` links issued as bench/redirect.py issues them;
all of them, and the bare 302 of bench/bare_302.py, run side by side for the whole A/B.

Each round measures every variant once, in an order rotated by one each round, with a
ceiling run before the first and after each, so no variant always comes first or last. A
run's ratio is to the mean of the ceiling runs either side; a variant's ratio is the median
of its runs'. On this shared machine a difference of a few hundredths between two variants
is within the noise of one A/B (bench/README.md): repeat it, or swap the names.

``--sched`` also reads the scheduler's account of each run (``/proc/<pid>/task/*/schedstat``):
the share of the wall time the server process spent on a CPU, waiting for one, and asleep,
and the click process's CPU time per request answered.

    .venv/bin/python bench/ab.py --mode durable before=HEAD~1 after=.
    .venv/bin/python bench/ab.py --workload per-recipient --links 200000 \\
        now=HEAD 'nofold=HEAD;TRACKER_ROLLUP_SECONDS=0'
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.latency import merged_percentile
from bench.redirect import HOT_LINKS, ROOT, WARMUP_S, bare_server, build, tracker_server, wrk


@dataclass
class Variant:
    name: str
    revision: str
    env: dict[str, str]
    url: str = ""
    pid: int = 0
    runs: list[dict] = field(default_factory=list)


def parse_variant(text: str) -> Variant:
    """``NAME=REV[;VAR=VALUE]...`` → a Variant."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"not NAME=REV[;VAR=VALUE]...: {text!r}")
    revision, *settings = rest.split(";")
    env = {}
    for setting in settings:
        var, sep, value = setting.partition("=")
        if not sep or not var:
            raise argparse.ArgumentTypeError(f"not VAR=VALUE: {setting!r} in {text!r}")
        env[var] = value
    return Variant(name, revision, env)


def is_commit(revision: str) -> bool:
    found = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
        capture_output=True,
    )
    return found.returncode == 0


def checkout(revision: str, into: Path) -> dict[str, str]:
    """The environment that runs ``revision``'s package: a PYTHONPATH to its files taken
    from git into ``into`` (none for ``.``, the working tree the virtualenv installed)."""
    if revision == ".":
        return {}
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "tracker", "migrations"],
        check=True,
        capture_output=True,
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return {"PYTHONPATH": str(into)}


def schedstat(pid: int) -> tuple[float, float]:
    """Seconds on a CPU and seconds waiting for one, over all threads of ``pid``."""
    running = waiting = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                ran, waited, _ = map(int, f.read().split())
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        running += ran
        waiting += waited
    return running / 1e9, waiting / 1e9


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(child) for child in f.read().split()]


def measured(variant: Variant, codes: Path, args: argparse.Namespace) -> dict:
    """One wrk run of ``variant``, with the scheduler's account of it if ``args.sched``."""
    if not args.sched:
        return wrk(variant.url, codes, args.segment, args.connections, False)
    clicks = children(variant.pid)
    started, before = time.monotonic(), schedstat(variant.pid)
    child_before = [schedstat(child)[0] for child in clicks]
    run = wrk(variant.url, codes, args.segment, args.connections, False)
    wall, after = time.monotonic() - started, schedstat(variant.pid)
    child_cpu = sum(schedstat(child)[0] for child in clicks) - sum(child_before)
    run["server_running"] = (after[0] - before[0]) / wall
    run["server_waiting"] = (after[1] - before[1]) / wall
    run["server_asleep"] = 1 - run["server_running"] - run["server_waiting"]
    run["click_process_us_per_request"] = child_cpu / max(run["requests"], 1) * 1e6
    return run


def summary(variant: Variant, ceilings: list[float]) -> dict:
    """Medians over a variant's runs; ``ceilings``: the mean of each run's two ceiling runs."""
    pairs = zip(variant.runs, ceilings, strict=True)
    ratios = [run["req_per_s"] / ceiling for run, ceiling in pairs]
    result = {
        "revision": variant.revision,
        "env": variant.env,
        "ratio": round(statistics.median(ratios), 3),
        "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "ratios": [round(ratio, 3) for ratio in ratios],
        "req_per_s": round(statistics.median(run["req_per_s"] for run in variant.runs)),
        "p99_ms": merged_percentile([(run["requests"], run["grid"]) for run in variant.runs], 99)
        / 1000,
        "non_302": sum(run["non_302"] for run in variant.runs),
    }
    for key in ("server_running", "server_waiting", "server_asleep"):
        if key in variant.runs[0]:
            result[key] = round(statistics.median(run[key] for run in variant.runs), 3)
    if "click_process_us_per_request" in variant.runs[0]:
        result["click_process_us_per_request"] = round(
            statistics.median(run["click_process_us_per_request"] for run in variant.runs), 1
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+", type=parse_variant, metavar="NAME=REV[;VAR=VALUE]")
    parser.add_argument("--mode", choices=("durable", "fast"), default="fast")
    parser.add_argument("--workload", choices=("hot", "per-recipient"), default="hot")
    parser.add_argument("--links", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--segment", type=int, default=2, help="seconds per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--sched", action="store_true", help="the scheduler's account too")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    names = [variant.name for variant in args.variants]
    if len(set(names)) != len(names):
        parser.error("each variant needs a name of its own")
    for variant in args.variants:
        if variant.revision != "." and not is_commit(variant.revision):
            parser.error(f"{variant.name}: {variant.revision!r} is not a commit of this repository")

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as servers:
        database = Path(tmp) / "bench.db"
        codes = build(database, args.links)
        codes_file = Path(tmp) / "codes.txt"
        if args.workload == "hot":
            codes = random.Random(args.seed).sample(codes, min(HOT_LINKS, len(codes)))
        codes_file.write_text("\n".join(codes) + "\n")
        del codes
        bare_url, _ = servers.enter_context(bare_server())
        for variant in args.variants:
            env = {**checkout(variant.revision, Path(tmp) / variant.name), **variant.env}
            copy = Path(tmp) / f"{variant.name}.db"
            shutil.copy(database, copy)
            variant.url, variant.pid = servers.enter_context(tracker_server(copy, args.mode, env))
        for url in (bare_url, *(variant.url for variant in args.variants)):
            wrk(url, codes_file, WARMUP_S, args.connections, False)

        ceiling_runs: list[float] = []
        ceilings: dict[str, list[float]] = {variant.name: [] for variant in args.variants}
        for round_number in range(args.rounds):
            turn = round_number % len(args.variants)
            order = args.variants[turn:] + args.variants[:turn]
            before = wrk(bare_url, codes_file, args.segment, args.connections, False)["req_per_s"]
            ceiling_runs.append(before)
            for variant in order:
                variant.runs.append(measured(variant, codes_file, args))
                after = wrk(bare_url, codes_file, args.segment, args.connections, False)
                ceiling_runs.append(after["req_per_s"])
                ceilings[variant.name].append((before + after["req_per_s"]) / 2)
                before = after["req_per_s"]

    results = {variant.name: summary(variant, ceilings[variant.name]) for variant in args.variants}
    low, middle, high = min(ceiling_runs), statistics.median(ceiling_runs), max(ceiling_runs)
    print(
        f"{args.workload} {args.mode}, {args.rounds} rounds of {args.segment} s; "
        f"ceiling {middle:.0f} req/s ({low:.0f}-{high:.0f})"
    )
    for name, result in results.items():
        line = (
            f"{name:12} ratio {result['ratio']:.3f} ({result['ratio_range'][0]:.2f}-"
            f"{result['ratio_range'][1]:.2f})  {result['req_per_s']:6d} req/s  "
            f"p99 {result['p99_ms']:5.1f} ms"
        )
        if "server_running" in result:
            line += (
                f"  server on CPU {result['server_running']:.2f} waiting "
                f"{result['server_waiting']:.2f} asleep {result['server_asleep']:.2f}"
            )
        if "click_process_us_per_request" in result:
            line += f", click process {result['click_process_us_per_request']:.1f} µs a request"
        print(line + (f"  {result['non_302']} non-302!" if result["non_302"] else ""))
    print(
        json.dumps(
            {
                "workload": args.workload,
                "mode": args.mode,
                "links": args.links,
                "rounds": args.rounds,
                "segment_s": args.segment,
                "ceiling_runs": ceiling_runs,
                "variants": results,
            }
        )
    )


if __name__ == "__main__":
    main()
