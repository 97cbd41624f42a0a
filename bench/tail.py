"""Where a redirect run's slow requests waited: wrk's latencies against the wire's.

Needs wrk and tcpdump (Debian: `apt-get install wrk tcpdump`), and root for the capture.

    .venv/bin/python bench/tail.py [--links 1000000] [--mode fast] [--workload per-recipient]
                                   [--runs 5] [--segment 2]

Issues ``--links`` links as bench/redirect.py does, starts one ``tracker serve`` worker and
runs wrk against it as the benchmark does (``-t1 -c64``, bench/wrk/codes.lua), each run
under a tcpdump of the loopback packets that carry data, connection starts included.
Every request is paired with the answer on its connection (``pair``), and for each run it
prints:

* wrk's own p99, p99.9 and maximum;
* the same figures on the wire, from a request's packet to its answer's: the server's
  part, without wrk's;
* what wrk would report from the wire's latencies (``corrected``): before it reports, wrk
  corrects for coordinated omission (``stats_correct`` in its stats.c), recording every
  latency over twice the mean interval between a connection's requests once more for each
  interval below it, as the requests it would have sent meanwhile;
* how many requests waited over 15 ms (issue 3's p99 limit) in the run's first 0.3 s, as
  wrk opens its 64 connections, and after.

bench/README.md ("Twelfth round") and docs/decisions/0013 report what it found.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.redirect import HOT_LINKS, P99_LIMIT_MS, WARMUP_S, build, tracker_server, wrk

START_S = 0.3  # the start of a run: wrk's connections opening


class Exchange(NamedTuple):
    sent: float  # the request's packet, seconds
    waited: float  # until its answer's packet, seconds
    client_port: int


def packets(path: Path) -> Iterable[tuple[float, int, int, bytes]]:
    """(time, source port, destination port, TCP payload) of each IPv4 TCP packet in a
    classic pcap file of the loopback interface (Ethernet framing, as Linux writes it)."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    fraction = 1e9 if magic == 0xA1B23C4D else 1e6  # nanosecond or microsecond stamps
    offset = 24
    while offset + 16 <= len(data):
        seconds, part, stored, _ = struct.unpack_from("<IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + stored]
        offset += 16 + stored
        ip = frame[14:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        tcp = ip[(ip[0] & 15) * 4 :]
        source, destination = struct.unpack_from("!HH", tcp)
        yield seconds + part / fraction, source, destination, tcp[(tcp[12] >> 4) * 4 :]


def pair(path: Path, port: int) -> list[Exchange]:
    """Each request to ``port`` with the answer on its connection, in order (HTTP/1.1
    answers come in the order of the requests; each fits one packet here)."""
    waiting: defaultdict[int, deque[float]] = defaultdict(deque)
    exchanges = []
    for at, source, destination, payload in packets(path):
        if destination == port and payload.startswith((b"GET ", b"HEAD ")):
            waiting[source].append(at)
        elif source == port and payload.startswith(b"HTTP/") and waiting[destination]:
            sent = waiting[destination].popleft()
            exchanges.append(Exchange(sent, at - sent, destination))
    return exchanges


def percentile(counts: Counter[int], share: float) -> int:
    """The smallest value with at least ``share`` (0 to 1) of ``counts`` at or under it."""
    wanted = share * sum(counts.values())
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= wanted:
            return value
    raise ValueError("no values")


def corrected(latencies_us: Counter[int], interval_us: int) -> Counter[int]:
    """wrk's ``stats_correct``: each latency n of at least twice the interval adds one more
    at each n - k * interval (k = 1, 2, ...) still over the interval."""
    out = Counter(latencies_us)
    for latency, count in latencies_us.items():
        if latency >= 2 * interval_us:
            for extra in range(latency - interval_us, interval_us, -interval_us):
                out[extra] += count
    return out


def describe(exchanges: list[Exchange], seconds: float, connections: int) -> str:
    latencies = Counter(round(exchange.waited * 1e6) for exchange in exchanges)
    # wrk's interval: the run's time over the requests one connection made.
    interval = round(seconds * 1e6 / (len(exchanges) // connections))
    fixed = corrected(latencies, interval)
    start = exchanges[0].sent
    limit = P99_LIMIT_MS / 1000
    early = sum(e.waited > limit for e in exchanges if e.sent - start < START_S)
    late = sum(e.waited > limit for e in exchanges if e.sent - start >= START_S)

    def ms(counts: Counter[int], share: float) -> str:
        return f"{percentile(counts, share) / 1000:.1f}"

    return (
        f"wire p99 {ms(latencies, 0.99)}, p99.9 {ms(latencies, 0.999)}, max "
        f"{max(latencies) / 1000:.1f}; as wrk corrects it (interval {interval / 1000:.1f} ms, "
        f"+{sum(fixed.values()) - len(exchanges)} samples) p99 {ms(fixed, 0.99)}; over "
        f"{P99_LIMIT_MS:g} ms: {early} in the first {START_S} s, {late} after"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--links", type=int, default=1_000_000)
    parser.add_argument("--mode", choices=("durable", "fast"), default="fast")
    parser.add_argument("--workload", choices=("per-recipient", "hot"), default="per-recipient")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--segment", type=int, default=2, help="seconds per run")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if shutil.which("tcpdump") is None:
        sys.exit("bench/tail.py needs tcpdump (apt-get install tcpdump)")
    with tempfile.TemporaryDirectory() as tmp:
        database, codes_file = Path(tmp) / "bench.db", Path(tmp) / "codes.txt"
        codes = build(database, args.links)
        if args.workload == "hot":
            codes = random.Random(1).sample(codes, min(HOT_LINKS, len(codes)))
        codes_file.write_text("\n".join(codes) + "\n")
        with tracker_server(database, args.mode) as (url, _):
            port = int(url.rsplit(":", 1)[1])
            wrk(url, codes_file, WARMUP_S, args.connections, False)
            for number in range(args.runs):
                capture = Path(tmp) / f"run{number}.pcap"
                tcpdump = subprocess.Popen(
                    [
                        *("tcpdump", "-i", "lo", "-s", "96", "-B", "65536", "-w", str(capture)),
                        f"tcp port {port} and (tcp[tcpflags] & (tcp-push|tcp-syn) != 0)",
                    ],
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(0.5)  # tcpdump is listening
                run = wrk(url, codes_file, args.segment, args.connections, False)
                time.sleep(0.2)
                tcpdump.send_signal(signal.SIGINT)
                tcpdump.wait()
                print(
                    f"run {number}: wrk {run['req_per_s']} req/s, p99 {run['p99_ms']:.1f}, "
                    f"p99.9 {run['p99_9_ms']:.1f}, max {run['max_ms']:.1f} ms; "
                    + describe(pair(capture, port), args.segment, args.connections),
                    flush=True,
                )
                time.sleep(1)


if __name__ == "__main__":
    main()
