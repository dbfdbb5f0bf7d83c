"""Drive a local Hetzner from Python: start one in a subprocess, and use its admin endpoints.

`LocalHetzner` is what the test fixtures, the benchmarks and `scherbelberg demo` use:

    with LocalHetzner() as hetzner:
        client = hcloud.Client(hetzner.token, api_endpoint=hetzner.endpoint)
        hetzner.control.set_faults({"http": [{"path": "^/servers$", "status": 503}]})
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from scherbelberg.errors import EmulatorError


@dataclass
class EmulatorControl:
    """The admin API (`/_emulator/...`) of a running local Hetzner."""

    endpoint: str  # ends in /v1
    admin_token: str

    @property
    def base(self) -> str:
        return self.endpoint.removesuffix("/v1") + "/_emulator"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.admin_token}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise EmulatorError(
                f"{method} {path}: {exc.code} {exc.read().decode()[:200]}"
            ) from None

    def info(self) -> dict[str, Any]:
        return dict(self._call("GET", "/info"))

    def new_project(
        self, name: str | None = None, requests_per_hour: int | None = None, **limits: int
    ) -> str:
        """Create an isolated project and return its token (`limits`: see model.world.Limits)."""
        body: dict[str, Any] = {"name": name} if name else {}
        if requests_per_hour is not None:
            body["requests_per_hour"] = requests_per_hour
        if limits:
            body["limits"] = limits
        return str(self._call("POST", "/projects", body)["token"])

    def requests(self, token: str | None = None, since: float = 0.0) -> list[dict[str, Any]]:
        query = f"?since={since}" + (f"&token={token}" if token else "")
        return list(self._call("GET", "/requests" + query)["requests"])

    def faults(self) -> dict[str, Any]:
        return dict(self._call("GET", "/faults"))

    def set_faults(self, faults: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("PUT", "/faults", faults))

    def update_faults(self, **parts: Any) -> dict[str, Any]:
        """Change only these parts of the fault configuration, e.g. `release_delay=8`,
        `chaos=True, seed=3`; the rest stays (`set_faults` replaces all of it)."""
        return dict(self._call("PATCH", "/faults", parts))

    def clear_faults(self) -> None:
        self.set_faults({})

    def availability(self) -> list[tuple[str, str]]:
        """The (server type, location) patterns that cannot be ordered now."""
        return [(t, loc) for t, loc in self._call("GET", "/availability")["unavailable"]]

    def set_unavailable(self, *patterns: str, profile: str | None = None) -> list[tuple[str, str]]:
        """Make exactly these unorderable: `"cx*@fsn1"`, `"cx33@*"`, and/or a named profile
        (`"2026-eu-shortage"`); no arguments make everything orderable. Other faults stay.

        Shows where Hetzner shows it: `GET /datacenters` drops the type from a datacenter's
        `server_types.available` (it stays in `supported`), `POST /servers` answers 412
        `resource_unavailable`.
        """
        body: dict[str, Any] = {"unavailable": list(patterns)}
        if profile is not None:
            body["profile"] = profile
        answer = self._call("PUT", "/availability", body)
        return [(t, loc) for t, loc in answer["unavailable"]]

    def freeze_rate_limit(self, token: str, frozen: bool = True) -> dict[str, Any]:
        return dict(self._call("PUT", f"/projects/{token}/rate_limit", {"frozen": frozen}))

    def server(self, server_id: int) -> dict[str, Any]:
        return dict(self._call("GET", f"/servers/{server_id}"))

    def kill(self, server_id: int) -> dict[str, Any]:
        return dict(self._call("POST", f"/servers/{server_id}/kill"))


class LocalHetzner:
    """A local Hetzner in a child process (`python -m scherbelberg.emulator`)."""

    def __init__(
        self,
        *args: str,
        machines: str = "nspawn",
        latency_profile: str = "instant",
        start_timeout: float = 600.0,
        stderr: Any = None,
        unavailable: Sequence[str] = (),
        availability: str | None = None,
        release_delay: float | None = None,
        chaos: bool = False,
        seed: int | None = None,
        faults: Sequence[str] = (),
    ) -> None:
        """`args` are more command-line options; the keywords are the rough-API ones
        (docs/emulator.md, Fault injection): `unavailable=["cx*@fsn1"]`,
        `availability="2026-eu-shortage"`, `release_delay=8`, `chaos=True, seed=3`, and
        `faults=["^/actions:503:0.1"]` (each a `--fault PATH:STATUS[:RATE[:DELAY]]`)."""
        rough: list[str] = []
        for pattern in unavailable:
            rough += ["--unavailable", pattern]
        if availability is not None:
            rough += ["--availability", availability]
        if release_delay is not None:
            rough += ["--release-delay", str(release_delay)]
        if chaos:
            rough.append("--chaos")
        if seed is not None:
            rough += ["--seed", str(seed)]
        for fault in faults:
            rough += ["--fault", fault]
        self.args = [
            "--machines",
            machines,
            "--latency-profile",
            latency_profile,
            *rough,
            *args,
        ]
        self.start_timeout = start_timeout
        self.stderr = stderr
        self.process: subprocess.Popen[str] | None = None
        self.endpoint = ""
        self.token = ""

    @property
    def control(self) -> EmulatorControl:
        return EmulatorControl(self.endpoint, self.token)

    def cluster_arguments(self, token: str) -> dict[str, Any]:
        """HetznerCluster's arguments for a cluster in the project of `token` here: endpoint,
        and the lab's own package mirror, Python downloads and address echo (its machines
        reach no other network)."""
        info = self.control.info()
        return {
            "token": token,
            "endpoint": self.endpoint,
            "pip_index_url": info["pip_index_url"],
            "python_downloads_json_url": info["python_downloads_json_url"],
            "client_address_url": info["echo_url"],
        }

    def start(self) -> LocalHetzner:
        command = [sys.executable, "-m", "scherbelberg.emulator", *self.args]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # if this process dies (a killed test run), the emulator stops and cleans up too
            preexec_fn=_stop_with_parent,
        )
        assert self.process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.process.stdout
        # a reader thread, because a buffered pipe and select() do not mix

        def read() -> None:
            for line in iter(stdout.readline, ""):
                lines.put(line)

        threading.Thread(target=read, daemon=True).start()
        values: dict[str, str] = {}
        deadline = time.monotonic() + self.start_timeout
        while len(values) < 2:
            try:
                line = lines.get(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
            except queue.Empty:
                if self.process.poll() is not None:
                    code = self.process.returncode
                    self.process = None
                    raise EmulatorError(
                        f"local Hetzner exited with code {code} before it was ready"
                    ) from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise EmulatorError(
                        f"local Hetzner did not start within {self.start_timeout:.0f} s"
                    ) from None
                continue
            key, _, value = line.strip().partition("=")
            values[key] = value
        self.endpoint, self.token = values["HCLOUD_ENDPOINT"], values["HCLOUD_TOKEN"]
        return self

    def stop(self, timeout: float = 120.0) -> int | None:
        """SIGTERM (the emulator deletes its machines), then SIGKILL after `timeout`."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None
        return code

    def __enter__(self) -> LocalHetzner:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _stop_with_parent() -> None:
    """In the child before exec: ask Linux for SIGTERM when the parent dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
