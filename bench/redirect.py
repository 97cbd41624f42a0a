"""Benchmark: the redirect hot path `GET /{code}` with click capture, against its ceiling.

Issues N links (default 1 000 000) into a fresh SQLite file through the NDJSON endpoint,
then drives one `tracker serve` worker (uvicorn, uvloop + httptools) on a free loopback
port with `wrk -t1 -c64` and `bench/wrk/codes.lua`, which draws a code at random per
request, in two workloads: *per-recipient* (codes drawn from all N links: each link is
tapped about once, so a cache barely helps) and *hot* (codes drawn from 100 links), each in
`TRACKER_CLICK_DURABILITY=durable` and `fast` mode (the server restarted for each mode).
After each run the clicks stored meanwhile are counted in the database and compared with
the 302s wrk received: every answered redirect must be a stored click.

The ceiling: a bare ASGI app answering a fixed 302 (`bench/bare_302.py`) on the same uvicorn
stack, driven by the same wrk script. This machine is shared and its speed swings by a third
within seconds, so each workload is measured in turns: short tracker runs (`--rounds`, of
`--segment` seconds), each between two ceiling runs; a run's ratio is to the mean of the
ceiling runs before and after it, the workload's ratio is the median of its runs' ratios, and
its latency percentiles are of all its runs' requests together (`bench/latency.py`).
Nothing is pinned by default (see NOT_PINNED); `--pin on` puts the servers on CPU 0 and wrk
on CPU 1, `--pin auto` decides by a short probe (pin unless pinning is slower for both the
ceiling and tracker).

    .venv/bin/python bench/redirect.py [--links 1000000] [--rounds 8] [--segment 2] [--pin off]
    .venv/bin/python bench/redirect.py --links 20000 --rounds 2    # a quick check, about a minute
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.latency import merged_percentile
from bench.ndjson import post_recipients
from tests.e2e.server import free_port, running_server, stop

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "wrk" / "codes.lua"
DESTINATION = "https://shop.example/landing?x=1"
SERVER_CPU, WRK_CPU = "0", "1"
HOT_LINKS = 100
WARMUP_S = 2
PROBE_S = 2
P99_LIMIT_MS = 15.0
TARGETS = {
    ("per-recipient", "fast"): 0.50,
    ("per-recipient", "durable"): 0.40,
    ("hot", "fast"): 0.65,
    ("hot", "durable"): 0.50,
}
SETTLE_S = {"durable": 0.5, "fast": 1.0}
# Measured with alternating 4 s runs on the 2-CPU machine (2026-11-23): pinning the server to
# CPU 0 and wrk to CPU 1 helped neither the figures nor their spread, so it is off by default.
NOT_PINNED = (
    "not pinned (default): in an A/B of alternating 4 s runs, server on CPU 0 + wrk on CPU 1 "
    "was slightly slower for both (median req/s unpinned → pinned: ceiling 18944 → 18277, "
    "tracker hot durable 6526 → 6239) and no steadier; --pin on or --pin auto (a probe) to change"
)


# --- building the data set --------------------------------------------------------------


async def issue_codes(url: str, path: str, key: str, lines: int) -> list[str]:
    """Issue ``lines`` links through the NDJSON endpoint; return their codes in order."""
    parts: list[bytes] = []
    await post_recipients(url, path, key, lines, parts.append)
    body = _http_body(b"".join(parts))
    codes = [code.decode() for code in re.findall(rb'"code"\s*:\s*"([^"]+)"', body)]
    if len(codes) != lines:
        raise RuntimeError(f"{len(codes)} links answered of {lines}; tail {body[-300:]!r}")
    return codes


def _http_body(raw: bytes) -> bytes:
    """The body of a raw HTTP/1.1 response, de-chunked."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise RuntimeError(f"issuing links answered {raw[:500]!r}")
    if b"transfer-encoding: chunked" not in head.lower():
        return body
    parts, pos = [], 0
    while True:
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol].split(b";")[0], 16)
        if size == 0:
            return b"".join(parts)
        parts.append(body[eol + 2 : eol + 2 + size])
        pos = eol + 2 + size + 2


def build(database: Path, links: int) -> list[str]:
    """Start tracker on a fresh database, make a campaign and issue ``links`` links."""
    with running_server(database) as server:
        key = server.first_key
        assert key, "no admin key in the startup banner"
        answer = httpx.post(
            server.url + "/api/v1/campaigns",
            headers={"Authorization": f"Bearer {key}"},
            json={"name": "bench", "destination": DESTINATION},
        )
        answer.raise_for_status()
        path = f"/api/v1/campaigns/{answer.json()['id']}/links"
        return asyncio.run(issue_codes(server.url, path, key, links))


def count_clicks(database: Path) -> int | None:
    """Rows in ``clicks``, read beside the running server (WAL); None without the table."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute("SELECT count(*) FROM clicks").fetchone()[0])
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()


# --- servers and wrk --------------------------------------------------------------------


def pin(pid: int, cpus: str) -> None:
    """Set the CPU affinity of every thread of ``pid`` (threads made later inherit it)."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True, capture_output=True)


# The bare 302 each ceiling is measured with: the issue's, an ASGI app on uvicorn; or the
# same 302 answered in uvicorn's HTTP protocol, as tracker answers most redirects.
CEILINGS = {"asgi": "httptools", "protocol": "bench.bare_302:Protocol"}


@contextmanager
def bare_server(ceiling: str = "asgi") -> Iterator[tuple[str, int]]:
    """Run bench/bare_302.py under uvicorn, one worker, with the HTTP protocol of
    ``ceiling`` (one of ``CEILINGS``); yield (url, pid)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "bench.bare_302:app"),
            *("--loop", "uvloop", "--http", CEILINGS[ceiling], "--no-access-log"),
            *("--workers", "1"),
            # As tracker serve runs uvicorn: no Server header, no proxy-headers middleware.
            *("--no-server-header", "--no-proxy-headers"),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not _answers_302(url + "/x"):
            if process.poll() is not None or time.monotonic() > deadline:
                error = (
                    process.stderr.read() if process.poll() is not None and process.stderr else ""
                )
                raise RuntimeError(f"bench/bare_302.py did not come up: {error}")
            time.sleep(0.1)
        yield url, process.pid
    finally:
        stop(process)


def _answers_302(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 302
    except httpx.TransportError:
        return False


@contextmanager
def tracker_server(
    database: Path, mode: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[tuple[str, int]]:
    """Run tracker serve on ``database`` in click durability ``mode`` (and ``env``, e.g. a
    ``PYTHONPATH`` with another revision's package: bench/ab.py); yield (url, pid)."""
    env = {**(env or {}), "TRACKER_CLICK_DURABILITY": mode}
    with running_server(database, env=env, cwd=cwd) as server:
        # Measure the steady state: the link index (decision 0010) is filled in the
        # background at startup, 1.4 s for a million links on an idle server.
        deadline = time.monotonic() + 120
        while not any("link index:" in line for line in server.output):
            if time.monotonic() > deadline:
                raise RuntimeError("the link index did not load:\n" + "\n".join(server.output))
            time.sleep(0.1)
        yield server.url, server.process.pid


def wrk(url: str, codes_file: Path, seconds: int, connections: int, pinned: bool) -> dict:
    """One wrk run of bench/wrk/codes.lua; the JSON its ``done`` prints."""
    command = [
        *(["taskset", "-c", WRK_CPU] if pinned else []),
        *("wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(SCRIPT)),
        *(url, "--", str(codes_file)),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    for line in run.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            result = json.loads(line.removeprefix("WRK_JSON "))
            seconds_run = result["duration_us"] / 1e6
            statuses = {int(k): v for k, v in result["statuses"].items()}
            percentiles = result["latency_us"]["percentiles"]
            return {
                "requests": result["requests"],
                "req_per_s": round(result["requests"] / seconds_run),
                "p50_ms": percentiles["50"] / 1000,
                "p99_ms": percentiles["99"] / 1000,
                "p99_9_ms": percentiles["99.9"] / 1000,
                "max_ms": result["latency_us"]["max"] / 1000,
                "statuses": statuses,
                "answered_302": statuses.get(302, 0),
                "non_302": sum(v for k, v in statuses.items() if k != 302),
                "socket_errors": {k: v for k, v in result["errors"].items() if v and k != "status"},
                "grid": sorted((float(p), us) for p, us in percentiles.items()),
            }
    raise RuntimeError(f"wrk failed ({run.returncode}): {run.stdout}\n{run.stderr}")


# --- the runs ---------------------------------------------------------------------------


def set_pinning(pid: int, pinned: bool) -> None:
    if not pinned and shutil.which("taskset") is None:
        return
    pin(pid, SERVER_CPU if pinned else ",".join(map(str, sorted(os.sched_getaffinity(0)))))


def probe(url: str, pid: int, codes_file: Path, connections: int) -> dict[str, int]:
    """req/s of one server unpinned, then pinned, PROBE_S seconds each."""
    rates = {}
    for pinned in (False, True):
        set_pinning(pid, pinned)
        rate = wrk(url, codes_file, PROBE_S, connections, pinned)["req_per_s"]
        rates["pinned" if pinned else "unpinned"] = rate
    return rates


def tracker_run(
    args: argparse.Namespace,
    url: str,
    bare_url: str,
    database: Path,
    codes_file: Path,
    mode: str,
    pinned: bool,
) -> dict:
    """Warm up, count the clicks, run tracker and the ceiling in turns, let the writer
    settle, count again.

    ``args.rounds`` tracker runs of ``args.segment`` seconds, each between two ceiling runs
    (bare, tracker, bare, …, tracker, bare): each tracker run is compared with the ceiling
    just before and just after it, so a slower or faster spell of this shared machine moves
    both sides of a ratio; the workload's ratio is the median of its runs' ratios.
    """
    wrk(url, codes_file, WARMUP_S, args.connections, pinned)
    time.sleep(SETTLE_S[mode])
    before = count_clicks(database)
    ceilings = [wrk(bare_url, codes_file, args.segment, args.connections, pinned)]
    segments = []
    for _ in range(args.rounds):
        segments.append(wrk(url, codes_file, args.segment, args.connections, pinned))
        ceilings.append(wrk(bare_url, codes_file, args.segment, args.connections, pinned))
    time.sleep(SETTLE_S[mode])
    after = count_clicks(database)
    result = combine(segments, ceilings)
    result["clicks_before"], result["clicks_after"] = before, after
    if before is not None and after is not None:
        result["clicks_stored"] = after - before
        result["clicks_missing"] = result["answered_302"] - (after - before)
    else:
        result["clicks_stored"] = result["clicks_missing"] = None
    return result


def combine(
    segments: list[dict], ceilings: list[dict], around: list[tuple[int, int]] | None = None
) -> dict:
    """One result for a workload's interleaved runs: medians of the rates and ratios, the
    latency percentiles of all their requests together, every response counted.

    Each run's ratio is to the mean of the two ceiling runs ``around`` names for it (their
    indices in ``ceilings``); by default run i sits between ceiling runs i and i + 1."""
    if around is None:
        around = [(index, index + 1) for index in range(len(segments))]
    ratios = []
    for run, (before, after) in zip(segments, around, strict=True):
        ceiling = (ceilings[before]["req_per_s"] + ceilings[after]["req_per_s"]) / 2
        ratios.append(run["req_per_s"] / ceiling)
    grids = [(run["requests"], run["grid"]) for run in segments]
    statuses: dict[int, int] = {}
    errors: dict[str, int] = {}
    for run in segments:
        for status, count in run["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
        for kind, count in run["socket_errors"].items():
            errors[kind] = errors.get(kind, 0) + count
    return {
        "req_per_s": round(statistics.median(run["req_per_s"] for run in segments)),
        "ceiling_req_per_s": round(statistics.median(run["req_per_s"] for run in ceilings)),
        "ratio_to_ceiling": round(statistics.median(ratios), 3),
        "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "requests": sum(run["requests"] for run in segments),
        "p50_ms": merged_percentile(grids, 50) / 1000,
        "p99_ms": merged_percentile(grids, 99) / 1000,
        "p99_9_ms": merged_percentile(grids, 99.9) / 1000,
        # The bare 302's own tail in the same turns: how much of a p99 is this machine's.
        "ceiling_p99_ms": merged_percentile(
            [(run["requests"], run["grid"]) for run in ceilings], 99
        )
        / 1000,
        "max_ms": max(run["max_ms"] for run in segments),
        "statuses": statuses,
        "answered_302": statuses.get(302, 0),
        "non_302": sum(count for status, count in statuses.items() if status != 302),
        "socket_errors": errors,
        "runs": [
            {"req_per_s": run["req_per_s"], "ratio": round(ratio, 3), "p99_ms": run["p99_ms"]}
            for run, ratio in zip(segments, ratios, strict=True)
        ],
        "ceiling_runs": [run["req_per_s"] for run in ceilings],
    }


def measure(
    args: argparse.Namespace, database: Path, all_codes: Path, hot_codes: Path
) -> tuple[str, dict[tuple[str, str], dict], dict[str, int]]:
    """Decide the pinning, then measure each workload in each mode against the ceiling.

    One bare server serves every ceiling run (it has no state, so it is warmed up once);
    tracker is restarted for each durability mode, and each workload is warmed up first.
    """
    runs: dict[tuple[str, str], dict] = {}
    late: dict[str, int] = {}
    with bare_server(args.ceiling) as (bare_url, bare_pid):
        wrk(bare_url, all_codes, WARMUP_S, args.connections, False)
        bare_probe = None
        if args.pin == "auto" and shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
            bare_probe = probe(bare_url, bare_pid, all_codes, args.connections)
        pinned = args.pin == "on"
        why = NOT_PINNED if args.pin == "off" else f"--pin {args.pin}: server on CPU 0, wrk on 1"
        for mode in ("durable", "fast"):
            with tracker_server(database, mode) as (url, pid):
                if bare_probe is not None and mode == "durable":
                    wrk(url, hot_codes, 1, args.connections, False)
                    pinned, why = choose(bare_probe, probe(url, pid, hot_codes, args.connections))
                    print(f"pinning: {why}")
                elif args.pin == "auto" and mode == "durable":
                    why = "not pinned: taskset or a second CPU is missing"
                set_pinning(bare_pid, pinned)
                set_pinning(pid, pinned)
                for workload, codes_file in (("per-recipient", all_codes), ("hot", hot_codes)):
                    run = tracker_run(args, url, bare_url, database, codes_file, mode, pinned)
                    runs[workload, mode] = run
                    print(
                        f"  {workload} {mode}: {run['req_per_s']} req/s, ratio "
                        f"{run['ratio_to_ceiling']} (runs {[r['ratio'] for r in run['runs']]})"
                    )
            # After SIGTERM the writer has drained: clicks stored since the last count came late.
            last = runs["hot", mode]
            if last["clicks_after"] is not None:
                late[mode] = (count_clicks(database) or 0) - last["clicks_after"]
    return why, runs, late


def choose(bare: dict[str, int], tracker: dict[str, int]) -> tuple[bool, str]:
    """Pin unless pinning was slower for both the ceiling and tracker."""
    figures = (
        f"probe {PROBE_S} s each, req/s unpinned → pinned: ceiling {bare['unpinned']} → "
        f"{bare['pinned']}, tracker hot durable {tracker['unpinned']} → {tracker['pinned']}"
    )
    if bare["pinned"] < bare["unpinned"] and tracker["pinned"] < tracker["unpinned"]:
        return False, f"not pinned: pinning was slower for both ({figures})"
    return True, f"server on CPU {SERVER_CPU}, wrk on CPU {WRK_CPU} ({figures})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--links", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=8, help="tracker runs per workload")
    parser.add_argument("--segment", type=int, default=2, help="seconds per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--pin", choices=("auto", "on", "off"), default="off")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--ceiling",
        choices=sorted(CEILINGS),
        default="asgi",
        help="the bare 302 as an ASGI app (issue 3's ceiling) or in the HTTP protocol",
    )
    args = parser.parse_args()
    started = time.monotonic()
    rng = random.Random(args.seed)
    results: dict[str, object] = {
        "links": args.links,
        "rounds": args.rounds,
        "segment_s": args.segment,
        "connections": args.connections,
        "wrk_threads": 1,
        "cpus": os.cpu_count(),
        "ceiling": args.ceiling,
    }
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "bench.db"
        codes = build(database, args.links)
        print(f"issued {len(codes)} links in {time.monotonic() - started:.1f} s")
        all_codes, hot_codes = Path(tmp) / "codes.txt", Path(tmp) / "hot.txt"
        all_codes.write_text("\n".join(codes) + "\n")
        hot_codes.write_text("\n".join(rng.sample(codes, min(HOT_LINKS, len(codes)))) + "\n")
        del codes
        why, runs, late = measure(args, database, all_codes, hot_codes)
    results["pinning"] = why
    results["clicks_stored_after_the_last_count_until_stop"] = late
    report(runs, results)
    results["seconds_total"] = round(time.monotonic() - started, 1)
    print(json.dumps(results))


def report(runs: dict[tuple[str, str], dict], results: dict) -> None:
    """A table of the four workloads, each with its verdict against the targets."""
    print()
    print(
        f"{'run':<24}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'ceiling':>9}{'c. p99':>8}{'ratio':>7}"
        f"{'range':>13}{'target':>8}{'302s':>9}{'non-302':>9}{'clicks':>9}{'missing':>9}"
        "  verdict"
    )
    for (workload, mode), run in runs.items():
        # Issue 3's ratio targets are to the bare ASGI app; against the protocol's bare 302
        # a ratio is reported, not judged.
        target = TARGETS[workload, mode] if results["ceiling"] == "asgi" else None
        run["target_ratio"] = target
        problems = []
        if target is not None and run["ratio_to_ceiling"] < target:
            problems.append("ratio below target")
        if run["p99_ms"] > P99_LIMIT_MS:
            problems.append(f"p99 > {P99_LIMIT_MS:g} ms")
        if run["non_302"] or run["socket_errors"]:
            problems.append(f"non-302 {run['statuses']} errors {run['socket_errors']}")
        if run["clicks_missing"] is None:
            problems.append("no clicks table")
        elif run["clicks_missing"] > 0:
            problems.append("CLICKS MISSING")
        run["ok"] = not problems
        clicks = "-" if run["clicks_stored"] is None else run["clicks_stored"]
        missing = "-" if run["clicks_missing"] is None else run["clicks_missing"]
        spread = "{:.2f}-{:.2f}".format(*run["ratio_range"])
        print(
            f"{workload + ' ' + mode:<24}{run['req_per_s']:>8}{run['p50_ms']:>8.2f}"
            f"{run['p99_ms']:>8.2f}{run['ceiling_req_per_s']:>9}{run['ceiling_p99_ms']:>8.2f}"
            f"{run['ratio_to_ceiling']:>7.3f}"
            f"{spread:>13}{'-' if target is None else '≥' + str(target):>8}"
            f"{run['answered_302']:>9}{run['non_302']:>9}"
            f"{clicks!s:>9}{missing!s:>9}  " + ("ok" if run["ok"] else "; ".join(problems))
        )
        results[f"{workload} {mode}"] = run
    print(
        f"each workload: {results['rounds']} tracker runs of {results['segment_s']} s between "
        f"{results['rounds'] + 1} ceiling (bare 302, {results['ceiling']}) runs; req/s and "
        "ceiling: medians; ratio: "
        "the median of each run's ratio to the mean of the ceiling runs before and after it "
        "(range: lowest-highest); p50/p99: of all the tracker runs' requests together; c. p99: "
        "of all the ceiling runs' requests together (the bare 302's tail on this machine in "
        "the same turns)"
    )
    print(f"targets: the ratio shown and p99 ≤ {P99_LIMIT_MS:g} ms")
    print(
        "clicks: stored during the measured runs; missing = 302s answered - clicks stored "
        f"(≤ 0 expected: up to {results['connections']} requests are still in flight when each "
        "run stops, answered to nobody but stored)"
    )
    print(
        "clicks stored after the last count, until the server stopped (SIGTERM drain): "
        + ", ".join(
            f"{mode} {n}"
            for mode, n in results["clicks_stored_after_the_last_count_until_stop"].items()
        )
    )
    print(f"pinning: {results['pinning']}")


if __name__ == "__main__":
    main()
