"""bench/tail.py: requests paired with their answers from a capture, and wrk's correction."""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

from bench.tail import corrected, pair, percentile

SERVER = 8000


def frame(source: int, destination: int, payload: bytes) -> bytes:
    """An Ethernet + IPv4 + TCP frame carrying ``payload`` (only the fields read matter)."""
    ip = bytes([0x45, 0]) + struct.pack("!H", 40 + len(payload)) + bytes(5) + b"\x06" + bytes(10)
    tcp = struct.pack("!HH", source, destination) + bytes(8) + b"\x50" + bytes(7)
    return bytes(12) + b"\x08\x00" + ip + tcp + payload


def capture(path: Path, packets: list[tuple[float, bytes]]) -> Path:
    """A classic pcap file (microsecond stamps) of ``packets``: (time, frame)."""
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for at, raw in packets:
        seconds = int(at)
        data += struct.pack("<IIII", seconds, round((at - seconds) * 1e6), len(raw), len(raw))
        data += raw
    path.write_bytes(data)
    return path


def test_each_request_is_paired_with_the_next_answer_on_its_connection(tmp_path: Path) -> None:
    path = capture(
        tmp_path / "run.pcap",
        [
            (1.000, frame(40001, SERVER, b"GET /a HTTP/1.1\r\n\r\n")),
            (1.001, frame(40002, SERVER, b"GET /b HTTP/1.1\r\n\r\n")),
            (1.002, frame(40001, SERVER, b"HEAD /c HTTP/1.1\r\n\r\n")),  # pipelined
            (1.004, frame(SERVER, 40002, b"HTTP/1.1 302 Found\r\n\r\n")),
            (1.005, frame(SERVER, 40001, b"HTTP/1.1 302 Found\r\n\r\n")),
            (1.006, frame(40003, 9999, b"GET /elsewhere HTTP/1.1\r\n\r\n")),  # another port
            (1.007, frame(40001, SERVER, b"more of a body")),  # not a request
            (1.010, frame(SERVER, 40001, b"HTTP/1.1 302 Found\r\n\r\n")),
            (1.011, frame(SERVER, 40009, b"HTTP/1.1 302 Found\r\n\r\n")),  # asked before
        ],
    )
    exchanges = [(round(e.sent, 3), round(e.waited, 3), e.client_port) for e in pair(path, SERVER)]
    assert exchanges == [(1.001, 0.003, 40002), (1.0, 0.005, 40001), (1.002, 0.008, 40001)]


def test_wrk_correction_adds_a_sample_per_interval_below_a_long_latency() -> None:
    # 10 ms with a 3 ms interval: 7 and 4 ms are added (1 ms is not over the interval).
    assert corrected(Counter({10_000: 2}), 3_000) == Counter({10_000: 2, 7_000: 2, 4_000: 2})
    # Under twice the interval: nothing added.
    assert corrected(Counter({5_999: 1, 100: 5}), 3_000) == Counter({5_999: 1, 100: 5})


def test_a_few_long_waits_become_the_p99_once_corrected() -> None:
    latencies = Counter({5_000: 990, 150_000: 10})  # 1 % waited 150 ms
    assert percentile(latencies, 0.99) == 5_000
    # Each 150 ms wait adds 28 samples from 145 ms down at a 5 ms interval: 280 in all.
    fixed = corrected(latencies, 5_000)
    assert sum(fixed.values()) == 1_280
    assert percentile(fixed, 0.99) > 100_000
