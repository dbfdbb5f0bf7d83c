"""How many idle servers (real machines) one host holds, and how fast they boot.

Starts a local Hetzner with real machines (systemd-nspawn, `LocalHetzner(machines="nspawn")`),
creates servers in batches (`--batch`, default 8, server type cx23: a 4 GiB cgroup memory limit
that an idle Debian never comes near) and waits until each one's sshd answers on port 22 (TCP
connect and the `SSH-` banner). After each batch and a short `--settle` pause it records the
machines running, the host's memory in use (MemTotal - MemAvailable from /proc/meminfo), the
machines' own memory (PSS of every process in their cgroups, which other work on the host does
not disturb), the CPU their processes use while idle, and the load average. It stops at the
first of:

- MemAvailable below `--min-available` GiB (default 2),
- the project's server limit (`--project-limit`, default 1000) or no public IPv4 address left,
- a machine that reaches `running` but does not answer SSH within `--ssh-timeout` (with
  fs.inotify.max_user_instances at Debian's default of 128 this happened at about 16-20
  machines; the emulator now raises it at start, see docs/emulator.md),
- `--max` machines (default 64),

then deletes every server, waits for the delete actions and prints Markdown: one row per batch
and a summary (machines held, MiB per machine, create → running and create → port 22 times).

    .venv/bin/python bench/machine_capacity.py              # 64 machines, about 4 minutes
    .venv/bin/python bench/machine_capacity.py --max 8 --latency-profile realistic

Needs root and the machine image (`python -m scherbelberg.emulator --build-image`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from scherbelberg.emulator.control import LocalHetzner

MIB = 1024 * 1024
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")


@dataclass
class Boot:
    server_id: int
    ip: str
    running: float | None = None  # seconds from POST /servers to status running
    ssh: float | None = None  # seconds from POST /servers to the SSH banner on port 22


@dataclass
class Batch:
    machines: int
    used_mib: float
    available_mib: float
    load1: float
    boots: list[Boot] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the batch, POSTs to the last SSH banner
    pss_mib: float | None = None  # PSS of all machine processes
    machines_cpu: float = 0.0  # CPU the machines used while idle, in CPUs (1.0 = one core)


def meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes."""
    values = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            values[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return values


def host_memory() -> tuple[float, float]:
    """(used, available) in MiB: used is MemTotal - MemAvailable."""
    info = meminfo()
    return (info["MemTotal"] - info["MemAvailable"]) / MIB, info["MemAvailable"] / MIB


def inotify_instances() -> int:
    return int(INOTIFY_INSTANCES.read_text())


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def instance_group(emulator_pid: int, lab_index: int) -> Path | None:
    """The emulator instance's memory cgroup (v1 memory hierarchy or v2), parent of every
    machine's group, if it made one."""
    for line in Path(f"/proc/{emulator_pid}/cgroup").read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory")
        elif controllers == "":
            base = Path("/sys/fs/cgroup")
        else:
            continue
        group = base / path.lstrip("/") / f"sbg{lab_index}"
        if group.is_dir():
            return group
    return None


def machine_pids(group: Path | None) -> list[int]:
    """Every process in the machines' cgroups."""
    if group is None:
        return []
    pids: list[int] = []
    for dirpath, _dirs, _files in os.walk(group):
        try:
            pids += [int(p) for p in (Path(dirpath) / "cgroup.procs").read_text().split()]
        except OSError:
            continue
    return pids


def machines_pss(group: Path | None) -> float | None:
    """Total PSS (MiB) of every process in the machines' cgroups: what the machines cost,
    without the noise of everything else on the host."""
    if group is None:
        return None
    total_kib = 0
    for pid in machine_pids(group):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total_kib += int(line.split()[1])
                break
    return total_kib / 1024


def machines_cpu(group: Path | None) -> dict[int, float]:
    """pid -> CPU seconds (user + system) of every process in the machines' cgroups."""
    ticks = os.sysconf("SC_CLK_TCK")
    times = {}
    for pid in machine_pids(group):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        times[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return times


def cgroup_memory(group: Path) -> tuple[int | None, int | None]:
    """(limit, usage) in bytes of a memory cgroup, v1 or v2 file names."""

    def read(*names: str) -> int | None:
        for name in names:
            try:
                text = (group / name).read_text().strip()
            except OSError:
                continue
            return None if text == "max" else int(text)
        return None

    return (
        read("memory.limit_in_bytes", "memory.max"),
        read("memory.usage_in_bytes", "memory.current"),
    )


class Api:
    def __init__(self, session: aiohttp.ClientSession, endpoint: str) -> None:
        self.session = session
        self.endpoint = endpoint

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.session.request(method, self.endpoint + path, json=body) as response:
            raw = await response.read()
            data = json.loads(raw) if raw else None
            if response.status >= 400:
                raise ApiError(response.status, data)
            return data

    async def wait_action(self, action_id: int, timeout: float = 600.0) -> None:
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            action = (await self.call("GET", f"/actions/{action_id}"))["action"]
            if action["status"] == "success":
                return
            if action["status"] == "error":
                raise RuntimeError(f"action {action_id} failed: {action['error']}")
            await asyncio.sleep(0.2)
        raise TimeoutError(f"action {action_id} still running after {timeout} s")


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.code = str(error.get("code", ""))
        super().__init__(f"{status} {self.code}: {error.get('message', body)}")


async def ssh_banner(host: str, deadline: float) -> None:
    """Wait until `host:22` accepts a connection and sends the `SSH-` banner."""
    give_up = time.monotonic() + deadline
    while True:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, 22), 2.0)
            try:
                line = await asyncio.wait_for(reader.readline(), 5.0)
            finally:
                writer.close()
                await writer.wait_closed()
            if line.startswith(b"SSH-"):
                return
        except (OSError, TimeoutError):
            pass
        if time.monotonic() > give_up:
            raise TimeoutError(f"{host}:22 sent no SSH banner within {deadline} s")
        await asyncio.sleep(0.2)


async def boot_one(api: Api, name: str, args: argparse.Namespace) -> Boot:
    started = time.monotonic()
    result = await api.call(
        "POST",
        "/servers",
        {"name": name, "server_type": args.server_type, "image": args.image},
    )
    server = result["server"]
    boot = Boot(server["id"], server["public_net"]["ipv4"]["ip"])
    for action in [result["action"], *result["next_actions"]]:
        await api.wait_action(action["id"])
    boot.running = time.monotonic() - started
    try:
        await ssh_banner(boot.ip, args.ssh_timeout)
    except TimeoutError:
        return boot  # ssh stays None: the machine exists but never answered
    boot.ssh = time.monotonic() - started
    return boot


async def run(hetzner: LocalHetzner, args: argparse.Namespace) -> str:
    assert hetzner.process is not None
    control = hetzner.control
    info = control.info()
    if info["backend"] != "nspawn":
        raise SystemExit("this benchmark needs real machines (nspawn backend)")
    lab_index = int(info["public_range"].split(".")[2])
    token = control.new_project(
        name="capacity", requests_per_hour=10**7, servers=args.project_limit
    )
    used0, available0 = host_memory()
    batches: list[Batch] = []
    boots: list[Boot] = []
    stop_reason = f"cap of {args.max} machines (--max)"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        api = Api(session, hetzner.endpoint)
        while True:
            count = min(args.batch, args.max - len(boots))
            started = time.monotonic()
            results = await asyncio.gather(
                *(boot_one(api, f"cap-{len(boots) + i}", args) for i in range(count)),
                return_exceptions=True,
            )
            seconds = time.monotonic() - started
            new = [r for r in results if isinstance(r, Boot)]
            errors = [r for r in results if isinstance(r, BaseException)]
            boots += new
            limit_errors = [
                e
                for e in errors
                if isinstance(e, ApiError)
                and e.code in ("resource_limit_exceeded", "resource_unavailable")
            ]
            if len(errors) > len(limit_errors):
                other = next(e for e in errors if e not in limit_errors)
                print(f"error: {other!r}", file=sys.stderr)
                stop_reason = f"error: {other}"
            # made with the first machine's cgroups
            group = instance_group(hetzner.process.pid, lab_index)
            cpu0, t0 = machines_cpu(group), time.monotonic()
            await asyncio.sleep(args.settle)
            cpu1, t1 = machines_cpu(group), time.monotonic()
            used, available = host_memory()
            batch = Batch(len(boots), used, available, load1(), new, seconds)
            batch.pss_mib = machines_pss(group)
            spent = sum(cpu1[pid] - cpu0.get(pid, 0.0) for pid in cpu1)
            batch.machines_cpu = spent / (t1 - t0)
            batches.append(batch)
            ssh_times = sorted(b.ssh for b in new if b.ssh is not None)
            print(
                f"  {len(boots):4} machines  used {used:7.0f} MiB  available "
                f"{available / 1024:5.1f} GiB  load {batch.load1:5.2f}  batch {seconds:5.1f} s"
                + (f"  boot→22 max {ssh_times[-1]:.1f} s" if ssh_times else ""),
                file=sys.stderr,
                flush=True,
            )
            if limit_errors:
                stop_reason = f"API refused more servers: {limit_errors[0]}"
                break
            silent = [b for b in new if b.ssh is None]
            if silent:
                stop_reason = (
                    f"{len(silent)} machine(s) reached `running` but sent no SSH banner within "
                    f"{args.ssh_timeout:g} s (fs.inotify.max_user_instances is "
                    f"{inotify_instances()}; see docs/emulator.md)"
                )
                break
            if stop_reason.startswith("error"):
                break
            if available < args.min_available * 1024:
                stop_reason = f"MemAvailable below {args.min_available:g} GiB"
                break
            if len(boots) >= args.max:
                break

        group = instance_group(hetzner.process.pid, lab_index)
        cgroup_rows = [
            cgroup_memory(group / f"s{boot.server_id}")
            for boot in boots[:3]
            if group is not None and (group / f"s{boot.server_id}").is_dir()
        ]

        print(f"deleting {len(boots)} servers", file=sys.stderr, flush=True)
        delete_started = time.monotonic()
        actions = await asyncio.gather(
            *(api.call("DELETE", f"/servers/{b.server_id}") for b in boots)
        )
        await asyncio.gather(*(api.wait_action(a["action"]["id"]) for a in actions))
        delete_seconds = time.monotonic() - delete_started
        await asyncio.sleep(args.settle)
        used_after, _ = host_memory()

    return report(
        args,
        batches,
        boots,
        stop_reason,
        (used0, available0),
        used_after,
        delete_seconds,
        cgroup_rows,
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(
    args: argparse.Namespace,
    batches: list[Batch],
    boots: list[Boot],
    stop_reason: str,
    baseline: tuple[float, float],
    used_after: float,
    delete_seconds: float,
    cgroup_rows: list[tuple[int | None, int | None]],
) -> str:
    used0, available0 = baseline
    lines = [
        f"idle {args.server_type} servers ({args.image}) in batches of {args.batch}, "
        f"{args.latency_profile} latency; host: "
        f"{os.cpu_count()} CPUs, {(used0 + available0) / 1024:.1f} GiB usable memory, "
        f"Linux {platform.release()}, fs.inotify.max_user_instances {inotify_instances()}",
        "",
        "| machines | host memory used | per machine | machines' PSS per machine | available "
        "| machines' CPU (idle) | load (1 min) | batch wall time "
        "| create → port 22, median / max |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| 0 | {used0:,.0f} MiB | | | {available0 / 1024:.1f} GiB | | | | |",
    ]
    for b in batches:
        ssh = [x.ssh for x in b.boots if x.ssh is not None]
        per = (b.used_mib - used0) / b.machines if b.machines else 0.0
        timing = f"{statistics.median(ssh):.1f} s / {max(ssh):.1f} s" if ssh else "-"
        pss = f"{b.pss_mib / b.machines:.1f} MiB" if b.pss_mib and b.machines else "-"
        lines.append(
            f"| {b.machines} | {b.used_mib:,.0f} MiB | {per:.1f} MiB | {pss} "
            f"| {b.available_mib / 1024:.1f} GiB | {100 * b.machines_cpu:.1f} % | {b.load1:.2f} "
            f"| {b.seconds:.1f} s | {timing} |"
        )
    held = len(boots)
    ssh_all = [b.ssh for b in boots if b.ssh is not None]
    running_all = [b.running for b in boots if b.running is not None]
    answered = sum(1 for b in boots if b.ssh is not None)
    lines += [
        "",
        f"- machines held: **{held}**, {answered} of them answering SSH "
        f"(stopped by: {stop_reason})",
    ]
    if held and ssh_all:
        per_machine = (batches[-1].used_mib - used0) / held
        lines.append(
            f"- host memory per idle machine: **{per_machine:.1f} MiB** "
            f"({batches[-1].used_mib - used0:,.0f} MiB for {held}, after a "
            f"{args.settle:g} s settle; other processes on the host move this figure)"
        )
        last_pss = batches[-1].pss_mib
        if last_pss:
            lines.append(
                f"- PSS of the machines' own processes: **{last_pss / held:.1f} MiB** per machine"
            )
        running_median, ssh_median = statistics.median(running_all), statistics.median(ssh_all)
        lines.append(
            f"- create → `running` (API): median {running_median:.1f} s, "
            f"max {max(running_all):.1f} s"
        )
        lines.append(
            f"- create → SSH banner on port 22: min {min(ssh_all):.1f} s, "
            f"median {ssh_median:.1f} s, p90 {_pct(ssh_all, 0.9):.1f} s, "
            f"max {max(ssh_all):.1f} s"
        )
    for limit, usage in cgroup_rows:
        if limit is not None and usage is not None:
            lines.append(
                f"- a machine's memory cgroup: limit {limit / MIB:,.0f} MiB, "
                f"charged {usage / MIB:.0f} MiB"
            )
            break
    lines.append(
        f"- deleting all {held}: {delete_seconds:.1f} s until every `delete_server` action "
        f"succeeded; host memory used afterwards {used_after:,.0f} MiB "
        f"(before: {used0:,.0f} MiB)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Idle machines one host holds on the local Hetzner (Markdown on stdout).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--batch", type=int, default=8, help="servers created at a time")
    parser.add_argument("--max", type=int, default=64, help="stop at this many machines")
    parser.add_argument(
        "--min-available", type=float, default=2.0, help="stop when MemAvailable (GiB) drops below"
    )
    parser.add_argument(
        "--project-limit", type=int, default=1000, help="the project's server limit"
    )
    parser.add_argument("--server-type", default="cx23")
    parser.add_argument("--image", default="debian-12")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument(
        "--ssh-timeout", type=float, default=120.0, help="seconds a machine may take to boot"
    )
    parser.add_argument(
        "--latency-profile",
        choices=["instant", "realistic"],
        default="instant",
        help="realistic adds Hetzner-like action and boot delays (see docs/emulator.md)",
    )
    parser.add_argument("--log", type=Path, default=Path("/tmp/bench-emulator.log"))
    args = parser.parse_args()
    if args.batch < 1 or args.max < 1:
        parser.error("--batch and --max must be at least 1")
    with (
        args.log.open("a") as log,
        LocalHetzner(
            machines="nspawn", latency_profile=args.latency_profile, stderr=log
        ) as hetzner,
    ):
        print(f"local Hetzner at {hetzner.endpoint}", file=sys.stderr, flush=True)
        text = asyncio.run(run(hetzner, args))
    command = shlex.join([".venv/bin/python", "bench/machine_capacity.py", *sys.argv[1:]])
    text += f"\n- command: `{command}`"
    print(text)


if __name__ == "__main__":
    main()
