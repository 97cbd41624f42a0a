"""Interleaved A/B of the redirect: tracker variants against each other and the ceiling.

A variant is a git revision of this repository (its ``tracker`` package and ``migrations``,
taken with ``git archive``; ``.`` is the working tree as it is), with environment settings
if any: ``NAME=REV[;VAR=VALUE]...`` (quote it for the shell). One database of ``--links``
links is issued by the working tree's tracker, as bench/redirect.py issues them, so every
revision must accept the working tree's schema. Each variant's server runs on a copy of it;
all of them, and the bare 302 of bench/bare_302.py, run side by side for the whole A/B,
started in a scratch directory so that no revision can pick up the working tree's files.

Each round measures every variant once, with a ceiling run before the first and after
each; the order rotates by one each round, so over a multiple of the number of variants in
rounds each variant takes each place equally often. A run's ratio is to the mean of the
ceiling runs either side; a variant's ratio is the median of its runs'. On this shared
machine a difference of a few hundredths between two variants is within the noise of one
A/B (bench/README.md): repeat it, or swap the names.

``--sched`` also reads the scheduler's account of each run (``/proc/<pid>/task/*/schedstat``):
the share of the wall time the server's event loop (its main thread) spent on a CPU,
waiting for one, and asleep, and the click process's CPU time per request answered. The
wall time runs from just before wrk starts to just after it exits, so "asleep" includes
wrk's own start and exit (a few milliseconds a run).

    .venv/bin/python bench/ab.py --mode durable --sched before=HEAD~1 after=.
    .venv/bin/python bench/ab.py --workload per-recipient --links 200000 \\
        now=HEAD 'nofold=HEAD;TRACKER_ROLLUP_SECONDS=0'
"""

from __future__ import annotations

import argparse
import json
import random
import re
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
from bench.redirect import (
    HOT_LINKS,
    ROOT,
    WARMUP_S,
    bare_server,
    build,
    combine,
    tracker_server,
    wrk,
)

_NAME = re.compile(r"[A-Za-z0-9_-]+")


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
    if not sep or not rest or not _NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(
            f"not NAME=REV[;VAR=VALUE]... with a NAME of letters, digits, - and _: {text!r}"
        )
    revision, *settings = rest.split(";")
    env = {}
    for setting in settings:
        var, sep, value = setting.partition("=")
        if not sep or not var:
            raise argparse.ArgumentTypeError(f"not VAR=VALUE: {setting!r} in {text!r}")
        if var == "TRACKER_CLICK_DURABILITY":
            raise argparse.ArgumentTypeError(f"{text!r}: the durability is --mode, for all")
        env[var] = value
    return Variant(name, revision, env)


def positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text}")
    return number


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
        capture_output=True,
    )
    if archive.returncode != 0:
        raise RuntimeError(f"git archive {revision}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return {"PYTHONPATH": str(into)}


def schedule(names: list[str], rounds: int) -> list[list[str]]:
    """The order of the variants in each round: rotated by one each round."""
    return [names[r % len(names) :] + names[: r % len(names)] for r in range(rounds)]


def schedstat(pid: int, tasks: str = "*") -> tuple[float, float] | None:
    """Seconds on a CPU and seconds waiting for one of ``pid``'s threads (``tasks``: a
    glob of thread ids; ``*``, all of them), summed; ``None`` if the process is gone."""
    running = waiting = 0
    paths = list(Path(f"/proc/{pid}/task").glob(f"{tasks}/schedstat"))
    if not paths:
        return None
    for path in paths:
        try:
            ran, waited, _ = map(int, path.read_text().split())
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        running += ran
        waiting += waited
    return running / 1e9, waiting / 1e9


def cpu_seconds(pids: list[int]) -> float | None:
    """Seconds on a CPU of the processes ``pids``, together; ``None`` if one is gone."""
    total = 0.0
    for pid in pids:
        figures = schedstat(pid)
        if figures is None:
            return None
        total += figures[0]
    return total


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(child) for child in f.read().split()]


def measured(variant: Variant, codes: Path, args: argparse.Namespace) -> dict:
    """One wrk run of ``variant``, with the scheduler's account of it if ``args.sched``."""
    if not args.sched:
        return wrk(variant.url, codes, args.segment, args.connections, False)
    clicks = children(variant.pid)
    started, before = time.monotonic(), schedstat(variant.pid, str(variant.pid))
    clicks_before = cpu_seconds(clicks)
    run = wrk(variant.url, codes, args.segment, args.connections, False)
    wall, after = time.monotonic() - started, schedstat(variant.pid, str(variant.pid))
    clicks_after = cpu_seconds(clicks)
    if before is None or after is None:
        raise RuntimeError(f"{variant.name}: the server stopped")
    run["server_running"] = (after[0] - before[0]) / wall
    run["server_waiting"] = (after[1] - before[1]) / wall
    run["server_asleep"] = 1 - run["server_running"] - run["server_waiting"]
    if clicks and clicks_before is not None and clicks_after is not None:  # none restarted
        spent = clicks_after - clicks_before
        run["click_process_us_per_request"] = spent / max(run["requests"], 1) * 1e6
    return run


def _median(runs: list[dict], key: str, digits: int) -> float | None:
    figures = [run[key] for run in runs if key in run]
    return round(statistics.median(figures), digits) if figures else None


def summary(variant: Variant, ceilings: list[dict], around: list[tuple[int, int]]) -> dict:
    """bench/redirect.py's ``combine`` of a variant's runs (each against the ceiling runs
    ``around`` names for it), in this script's terms, with the scheduler's medians."""
    combined = combine(variant.runs, ceilings, around)
    result = {
        "revision": variant.revision,
        "env": variant.env,
        "ratio": combined["ratio_to_ceiling"],
        "ratio_range": combined["ratio_range"],
        "ratios": [run["ratio"] for run in combined["runs"]],
        "req_per_s": combined["req_per_s"],
        "p99_ms": combined["p99_ms"],
        "non_302": combined["non_302"],
        "socket_errors": combined["socket_errors"],
    }
    for key in ("server_running", "server_waiting", "server_asleep"):
        figure = _median(variant.runs, key, 3)
        if figure is not None:
            result[key] = figure
    figure = _median(variant.runs, "click_process_us_per_request", 1)
    if figure is not None:
        result["click_process_us_per_request"] = figure
    return result


def report(args: argparse.Namespace, ceiling_runs: list[int], results: dict[str, dict]) -> None:
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
                f"  event loop on CPU {result['server_running']:.2f} waiting "
                f"{result['server_waiting']:.2f} asleep {result['server_asleep']:.2f}"
            )
        if "click_process_us_per_request" in result:
            line += f", click process {result['click_process_us_per_request']:.1f} µs a request"
        if result["non_302"]:
            line += f"  {result['non_302']} answers not 302!"
        if result["socket_errors"]:
            line += f"  socket errors {result['socket_errors']}!"
        print(line)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+", type=parse_variant, metavar="NAME=REV[;VAR=VALUE]")
    parser.add_argument("--mode", choices=("durable", "fast"), default="fast")
    parser.add_argument("--workload", choices=("hot", "per-recipient"), default="hot")
    parser.add_argument("--links", type=positive, default=1_000_000)
    parser.add_argument("--rounds", type=positive, default=10)
    parser.add_argument("--segment", type=positive, default=2, help="seconds per run")
    parser.add_argument("--connections", type=positive, default=64)
    parser.add_argument("--sched", action="store_true", help="the scheduler's account too")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    variants: dict[str, Variant] = {}
    for variant in args.variants:
        if variant.name in variants:
            parser.error(f"two variants named {variant.name!r}")
        if variant.revision != "." and not is_commit(variant.revision):
            parser.error(f"{variant.name}: {variant.revision!r} is not a commit of this repository")
        variants[variant.name] = variant

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as servers:
        scratch = Path(tmp)
        database = scratch / "built.db"
        codes = build(database, args.links)
        codes_file = scratch / "codes.txt"
        if args.workload == "hot":
            codes = random.Random(args.seed).sample(codes, min(HOT_LINKS, len(codes)))
        codes_file.write_text("\n".join(codes) + "\n")
        del codes
        bare_url, _ = servers.enter_context(bare_server())
        for variant in variants.values():
            env = {**checkout(variant.revision, scratch / f"rev-{variant.name}"), **variant.env}
            copy = scratch / f"db-{variant.name}.db"
            shutil.copy(database, copy)
            server = tracker_server(copy, args.mode, env, cwd=scratch)
            variant.url, variant.pid = servers.enter_context(server)
        for url in (bare_url, *(variant.url for variant in variants.values())):
            wrk(url, codes_file, WARMUP_S, args.connections, False)
        if args.sched and not all(children(variant.pid) for variant in variants.values()):
            parser.error("--sched: a server has no click process (TRACKER_CLICK_WRITER=thread?)")

        def ceiling() -> dict:
            return wrk(bare_url, codes_file, args.segment, args.connections, False)

        ceilings = [ceiling()]
        around: dict[str, list[tuple[int, int]]] = {name: [] for name in variants}
        for order in schedule(list(variants), args.rounds):
            for name in order:
                variants[name].runs.append(measured(variants[name], codes_file, args))
                ceilings.append(ceiling())
                around[name].append((len(ceilings) - 2, len(ceilings) - 1))

    results = {name: summary(variant, ceilings, around[name]) for name, variant in variants.items()}
    report(args, [run["req_per_s"] for run in ceilings], results)


if __name__ == "__main__":
    main()
