"""How many API requests per second the local Hetzner answers.

Starts a local Hetzner in a child process (`LocalHetzner`) for each machines backend asked
for, creates a project whose rate limit is out of the way (`requests_per_hour=10**7`) and
measures, for each request kind and concurrency, how many requests complete per second:

- `GET /server_types?per_page=50`: the static catalog, the biggest list body (29 types).
- `GET /servers`: a project with `--servers` servers (default 20, all `running`).
- `POST /ssh_keys` + `DELETE /ssh_keys/{id}`: state changes (each pair counts as 2 requests).

The client (aiohttp) runs on the same host as the emulator and competes with it for the CPU,
so the figures are a floor for the emulator alone; the table also gives the emulator
process's own CPU use. Every response is checked (a non-2xx status aborts the run).

    .venv/bin/python bench/emulator_requests.py                # both backends, ~1.5 min
    .venv/bin/python bench/emulator_requests.py --backends none --duration 3

`nspawn` needs root and the machine image (`python -m scherbelberg.emulator --build-image`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import secrets
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from scherbelberg.emulator.control import LocalHetzner

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# One request (or a fixed sequence of them) by one worker; returns how many requests it sent.
Operation = Callable[[aiohttp.ClientSession, int], Awaitable[int]]


@dataclass
class Cell:
    backend: str
    request: str
    concurrency: int
    requests: int
    seconds: float
    latencies: list[float]  # seconds per operation
    server_cpu: float  # emulator CPU seconds during the cell

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def ed25519_public_key() -> str:
    """A syntactically valid OpenSSH ed25519 public key with a random (unique) blob."""
    kind = b"ssh-ed25519"
    blob = struct.pack(">I", len(kind)) + kind + struct.pack(">I", 32) + secrets.token_bytes(32)
    return "ssh-ed25519 " + base64.b64encode(blob).decode() + " bench"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def check(response: aiohttp.ClientResponse, expected: int, parse: bool = False) -> Any:
    """Read the body, fail on an unexpected status; parse the JSON only when asked (the client
    shares the CPU with the emulator, so it does no work it does not need)."""
    body = await response.read()
    if response.status != expected:
        raise RuntimeError(
            f"{response.method} {response.url.path}: {response.status} {body[:300]!r}"
        )
    return json.loads(body) if parse else None


def operations(endpoint: str) -> dict[str, Operation]:
    async def server_types(session: aiohttp.ClientSession, worker: int) -> int:
        async with session.get(endpoint + "/server_types", params={"per_page": "50"}) as r:
            await check(r, 200)
        return 1

    async def servers(session: aiohttp.ClientSession, worker: int) -> int:
        async with session.get(endpoint + "/servers") as r:
            await check(r, 200)
        return 1

    keys: dict[int, str] = {}

    async def ssh_key_pair(session: aiohttp.ClientSession, worker: int) -> int:
        # one key per worker, deleted again at once, so names and fingerprints never clash
        public_key = keys.setdefault(worker, ed25519_public_key())
        body = {"name": f"bench-{worker}", "public_key": public_key}
        async with session.post(endpoint + "/ssh_keys", json=body) as r:
            key_id = (await check(r, 201, parse=True))["ssh_key"]["id"]
        async with session.delete(f"{endpoint}/ssh_keys/{key_id}") as r:
            await check(r, 204)
        return 2

    return {
        "GET /server_types?per_page=50": server_types,
        "GET /servers": servers,
        "POST + DELETE /ssh_keys": ssh_key_pair,
    }


async def measure(
    session: aiohttp.ClientSession,
    operation: Operation,
    concurrency: int,
    duration: float,
    warmup: float,
    pid: int,
) -> tuple[int, float, list[float], float]:
    """Run `concurrency` workers for `warmup + duration` s; count only the last `duration`."""
    measuring = False
    stop = False
    count = 0
    latencies: list[float] = []

    async def worker(index: int) -> None:
        nonlocal count
        while not stop:
            started = time.perf_counter()
            sent = await operation(session, index)
            if measuring and not stop:
                count += sent
                latencies.append(time.perf_counter() - started)

    tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    try:
        await asyncio.sleep(warmup)
        measuring = True
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        await asyncio.sleep(duration)
        stop = True
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
        await asyncio.gather(*tasks)
    finally:
        stop = True
        for task in tasks:
            task.cancel()
    return count, elapsed, latencies, cpu


async def make_servers(
    session: aiohttp.ClientSession, endpoint: str, count: int, wait_for_ssh: bool
) -> None:
    """`count` cx23 servers, all `running` (and, with machines, answering on port 22)."""
    created = []
    for index in range(count):
        body = {"name": f"bench-{index}", "server_type": "cx23", "image": "debian-12"}
        async with session.post(endpoint + "/servers", json=body) as r:
            created.append(await check(r, 201, parse=True))
    for result in created:
        for action in [result["action"], *result["next_actions"]]:
            while True:
                async with session.get(f"{endpoint}/actions/{action['id']}") as r:
                    status = (await check(r, 200, parse=True))["action"]["status"]
                if status == "success":
                    break
                if status == "error":
                    raise RuntimeError(f"action {action['id']} failed")
                await asyncio.sleep(0.2)
    if wait_for_ssh:
        for result in created:
            ip = result["server"]["public_net"]["ipv4"]["ip"]
            await wait_for_port(ip, 22, deadline=180.0)


async def wait_for_port(host: str, port: int, deadline: float) -> None:
    give_up = time.monotonic() + deadline
    while True:
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
            writer.close()
            await writer.wait_closed()
            return
        except (OSError, TimeoutError):
            if time.monotonic() > give_up:
                raise RuntimeError(f"{host}:{port} did not answer within {deadline} s") from None
            await asyncio.sleep(0.3)


async def run_backend(
    hetzner: LocalHetzner, backend: str, args: argparse.Namespace
) -> tuple[list[Cell], float]:
    assert hetzner.process is not None
    pid = hetzner.process.pid
    token = hetzner.control.new_project(
        name=f"bench-{backend}", requests_per_hour=10**7, servers=max(64, args.servers)
    )
    cells = []
    max_conc = max(args.concurrency)
    connector = aiohttp.TCPConnector(limit=max_conc, family=socket.AF_INET)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        await make_servers(session, hetzner.endpoint, args.servers, wait_for_ssh=backend != "none")
        if backend != "none":
            await asyncio.sleep(args.settle)  # let the guests finish booting (cloud-init)
        for name, operation in operations(hetzner.endpoint).items():
            for concurrency in args.concurrency:
                count, seconds, latencies, cpu = await measure(
                    session, operation, concurrency, args.duration, args.warmup, pid
                )
                cell = Cell(backend, name, concurrency, count, seconds, latencies, cpu)
                print(
                    f"  {backend:6} {name:30} c={concurrency:<3} {cell.rate:8.0f} req/s",
                    file=sys.stderr,
                    flush=True,
                )
                cells.append(cell)
    return cells, rss_mib(pid)


def table(cells: list[Cell]) -> str:
    lines = [
        "| machines | request | concurrency | requests/s | p50 ms | p99 ms | emulator CPU |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        lines.append(
            f"| {c.backend} | `{c.request}` | {c.concurrency} | {c.rate:,.0f} "
            f"| {c.percentile(0.5):.1f} | {c.percentile(0.99):.1f} "
            f"| {100 * c.server_cpu / c.seconds:.0f} % |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Requests per second of the local Hetzner's API (Markdown table on stdout).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=["none", "nspawn"],
        default=["none", "nspawn"],
        help="machines backends to measure (nspawn needs root and the machine image)",
    )
    parser.add_argument(
        "--concurrency", nargs="+", type=int, default=[1, 32], help="requests in flight"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--servers", type=int, default=20, help="servers in the project")
    parser.add_argument(
        "--settle", type=float, default=10.0, help="nspawn: seconds to wait after SSH answers"
    )
    parser.add_argument("--log", type=Path, default=Path("/tmp/bench-emulator.log"))
    args = parser.parse_args()

    cells: list[Cell] = []
    rss: dict[str, float] = {}
    with args.log.open("a") as log:
        for backend in args.backends:
            print(f"starting a local Hetzner (machines={backend})", file=sys.stderr, flush=True)
            with LocalHetzner(machines=backend, stderr=log) as hetzner:
                backend_cells, rss[backend] = asyncio.run(run_backend(hetzner, backend, args))
                cells += backend_cells
    print(
        f"local Hetzner API throughput, {args.servers} servers in the project, "
        f"{args.duration:g} s per cell; host: {platform.node()}, {os.cpu_count()} CPUs, "
        f"Linux {platform.release()}, Python {platform.python_version()}\n"
    )
    print(table(cells))
    print()
    print("- requests/s counts both requests of a POST + DELETE pair; its latencies are per pair.")
    for backend, mib in rss.items():
        print(f"- emulator RSS at the end ({backend}): {mib:.0f} MiB")


if __name__ == "__main__":
    main()
