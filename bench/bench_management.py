"""Management protocol benchmark: round-trip latency and chunked-transfer throughput over real ptys.

Starts a simulator in a temporary directory, talks to its terminals through their pseudo-terminals exactly
as the station talks to a CDC-ACM port, prints a table of figures and stops the simulator, even on error.

    .venv/bin/python bench/bench_management.py [--terminals 1] [--requests 2000] [--size-mib 16]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from simulator import launcher  # noqa: E402
from terminal.client import ManagementClient  # noqa: E402
from terminal.errors import NaiadError, TransferError  # noqa: E402
from terminal.protocol import OBJECT_LOOPBACK, MessageType  # noqa: E402

LOG = logging.getLogger(__name__)
MIB = 1024 * 1024
DEFAULT_FRAME_SIZES = (256, 1024, 4096, 16384, 65536)
DEFAULT_CLIENT_FRAME = 4096  # what ManagementClient asks for unless told otherwise
T = TypeVar("T")


@dataclass
class Latency:
    name: str
    samples_ms: list[float]

    def row(self) -> list[str]:
        cuts = statistics.quantiles(self.samples_ms, n=100, method="inclusive")
        return [
            self.name,
            str(len(self.samples_ms)),
            f"{statistics.median(self.samples_ms):.3f}",
            f"{cuts[98]:.3f}",
            f"{statistics.fmean(self.samples_ms):.3f}",
            f"{max(self.samples_ms):.3f}",
        ]


@dataclass
class Transfer:
    frame: int  # frame size asked for
    granted: int  # frame size the unit granted
    chunk: int  # object bytes per request
    size: int  # object bytes moved each way, per terminal
    write_s: float
    read_s: float
    retransmissions: int
    terminals: int

    def row(self) -> list[str]:
        moved = self.size * self.terminals / MIB
        return [
            str(self.frame),
            str(self.granted),
            str(self.chunk),
            f"{self.size / MIB:.2f}",
            f"{moved / self.write_s:.2f}",
            f"{moved / self.read_s:.2f}",
            str(self.retransmissions),
        ]


class HashingSink:
    """A write-only file that keeps the SHA-256 and length of what it was given, not the bytes."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def on_every_terminal(ptys: Sequence[str], work: Callable[[str], T]) -> list[T]:
    """``work(pty)`` on each terminal at once, one thread each, as the station's I/O workers do."""
    if len(ptys) == 1:
        return [work(ptys[0])]
    with ThreadPoolExecutor(max_workers=len(ptys)) as pool:
        return list(pool.map(work, ptys))


def measure_latency(ptys: Sequence[str], name: str, type_: int, requests: int) -> Latency:
    def run(pty: str) -> list[float]:
        samples = []
        with ManagementClient(f"serial:{pty}") as client:
            for _ in range(requests):
                started = time.perf_counter()
                client.request(type_)
                samples.append((time.perf_counter() - started) * 1000)
        return samples

    return Latency(name, [s for part in on_every_terminal(ptys, run) for s in part])


def measure_transfer(ptys: Sequence[str], frame: int, size: int, max_chunks: int) -> Transfer:
    """OBJECT_WRITE then OBJECT_READ of the loopback object on every terminal; both checked by SHA-256."""
    with ManagementClient(f"serial:{ptys[0]}", max_frame=frame) as probe:
        granted, chunk = probe.max_frame, probe.chunk_size
    size = min(size, chunk * max_chunks)
    data = os.urandom(size)
    sha = hashlib.sha256(data).digest()
    write_s: dict[str, float] = {}
    read_s: dict[str, float] = {}
    retransmissions: dict[str, int] = {}

    def run(pty: str) -> None:
        with ManagementClient(f"serial:{pty}", max_frame=frame, timeout=30.0) as client:
            started = time.perf_counter()
            client.write_object(OBJECT_LOOPBACK, data)
            write_s[pty] = time.perf_counter() - started
            sink = HashingSink()
            started = time.perf_counter()
            client.read_object_into(OBJECT_LOOPBACK, sink)  # type: ignore[arg-type]
            read_s[pty] = time.perf_counter() - started
            if sink.size != size or sink.digest.digest() != sha:
                raise TransferError(name=OBJECT_LOOPBACK, detail="read back differs from what was written")
            retransmissions[pty] = client.retransmissions

    on_every_terminal(ptys, run)  # the slowest terminal sets the aggregate rate
    return Transfer(
        frame,
        granted,
        chunk,
        size,
        max(write_s.values()),
        max(read_s.values()),
        sum(retransmissions.values()),
        len(ptys),
    )


def peak_rss_kib(pid: int) -> int | None:
    """A process's peak resident set (VmHWM) from /proc, None where there is no /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        title,
        "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def run_bench(args: argparse.Namespace, state: Path) -> None:
    started = time.perf_counter()
    status = launcher.start_detached(
        state, args.terminals, faults={k: v for k, v in (("ber", args.ber), ("drop", args.drop)) if v}
    )
    sim_pid = int(status["pid"])
    ptys = [t["pty"] for t in status["terminals"]]
    print(
        f"simulator pid {sim_pid}: {len(ptys)} terminal(s) up in {time.perf_counter() - started:.1f} s; "
        f"ber={args.ber} drop={args.drop}",
        flush=True,
    )

    latencies = [
        measure_latency(ptys, "INFO", MessageType.INFO, args.requests),
        measure_latency(ptys, "TIME (empty request)", MessageType.TIME, args.requests),
    ]
    print()
    print(
        table(
            f"Round-trip latency, ms ({len(ptys)} terminal(s) at once, frame {DEFAULT_CLIENT_FRAME})",
            ["request", "n", "p50", "p99", "mean", "max"],
            [lat.row() for lat in latencies],
        ),
        flush=True,
    )

    size = int(args.size_mib * MIB)
    transfers = [measure_transfer(ptys, DEFAULT_CLIENT_FRAME, size, 1 << 30)]
    transfers += [measure_transfer(ptys, frame, size, args.max_chunks) for frame in args.frame_sizes]
    print()
    print(
        table(
            f"Chunked transfer of {OBJECT_LOOPBACK} (SHA-256 checked), MiB/s summed over "
            f"{len(ptys)} terminal(s); first row: the client's default frame, the full size",
            ["frame", "granted", "chunk B", "MiB", "write MiB/s", "read MiB/s", "retransmits"],
            [t.row() for t in transfers],
        ),
        flush=True,
    )

    station_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    sim_kib = peak_rss_kib(sim_pid)
    print()
    print(
        f"peak RSS: station (this process) {station_kib / 1024:.1f} MiB, of which the {args.size_mib:g} MiB "
        f"test object is the station's own; simulator "
        f"{'n/a' if sim_kib is None else f'{sim_kib / 1024:.1f} MiB'}"
    )
    print(f"total time {time.perf_counter() - started:.1f} s")


def stop_simulator(state: Path) -> None:
    """Stop the simulator of ``state`` if one runs; kill it when it does not answer."""
    sim_json = state / "sim.json"
    if not sim_json.exists():
        return
    try:
        launcher.stop(state)
    except (NaiadError, OSError, ValueError, KeyError):
        LOG.warning("the simulator did not stop cleanly; killing it", exc_info=True)
        with contextlib.suppress(OSError, ValueError, KeyError):
            os.kill(int(json.loads(sim_json.read_text())["pid"]), signal.SIGKILL)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--terminals", type=int, default=1, help="simulated terminals, measured at once")
    parser.add_argument("--requests", type=int, default=2000, help="requests per latency figure and terminal")
    parser.add_argument("--size-mib", type=float, default=16.0, help="object size for the transfer figures")
    parser.add_argument(
        "--frame-sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=list(DEFAULT_FRAME_SIZES),
        help="comma-separated frame sizes to sweep",
    )
    parser.add_argument(
        "--max-chunks",
        type=int,
        default=2000,
        help="cap on requests per transfer in the sweep, so small frames finish in seconds",
    )
    parser.add_argument("--ber", type=float, default=0.0, help="bit-error rate injected on the links")
    parser.add_argument("--drop", type=float, default=0.0, help="byte-drop probability injected on the links")
    args = parser.parse_args(argv)
    if args.terminals < 1 or args.requests < 2 or args.size_mib <= 0 or args.max_chunks < 1:
        parser.error("--terminals and --max-chunks must be at least 1, --requests at least 2, --size-mib positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="naiad-bench-") as tmp:
        state = Path(tmp) / "sim"
        try:
            run_bench(args, state)
        except NaiadError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            if exc.remedy_text:
                print(exc.remedy_text, file=sys.stderr)
            return 1
        finally:
            stop_simulator(state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
