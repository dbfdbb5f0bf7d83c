"""What the scheduler node reports about its idleness, for `idle_timeout` (cluster/lifetime.py).

Idle means: no task processing, queued or waiting, and no client connected. distributed tracks
the first part itself (`Scheduler.idle_since`); the preload below adds the second.
"""

from __future__ import annotations

IDLE_PRELOAD_FILE = "/etc/scherbelberg/idle_preload.py"  # `dask scheduler --preload` it
IDLE_STATUS_FILE = "/run/scherbelberg/idle.json"  # written by the preload, for the node reaper
IDLE_HANDLER = "scherbelberg_idle"  # the scheduler RPC that the preload adds

# A dask preload for the scheduler (`dask scheduler --preload <file>`): it adds the RPC
# `scherbelberg_idle`, answering how long the scheduler has been idle in the sense above, and
# writes the same to IDLE_STATUS_FILE every few seconds for the node's reaper (which reads a
# file instead of speaking Dask's TLS protocol). distributed already tracks `idle_since` (no
# processing, queued or unrunnable tasks); the preload adds "and no client".
IDLE_PRELOAD = f'''\
"""scherbelberg: how long this scheduler has been idle (no tasks and no client)."""
import json, os, time
from tornado.ioloop import PeriodicCallback

STATUS = {IDLE_STATUS_FILE!r}


def dask_setup(scheduler):
    seen = {{"client": time.time()}}

    def status(comm=None):
        now = time.time()
        clients = [c for c in scheduler.clients if c != "fire-and-forget"]
        if clients:
            seen["client"] = now
        since = scheduler.idle_since
        idle_for = None if since is None else now - max(since, seen["client"])
        return {{"time": now, "clients": len(clients), "busy": since is None,
                 "idle_for": idle_for}}

    def write():
        os.makedirs(os.path.dirname(STATUS), exist_ok=True)
        tmp = STATUS + ".tmp"
        with open(tmp, "w") as f:
            json.dump(status(), f)
        os.replace(tmp, STATUS)

    scheduler.handlers[{IDLE_HANDLER!r}] = status
    callback = PeriodicCallback(write, 5000)
    callback.start()
    scheduler.periodic_callbacks["scherbelberg-idle"] = callback
'''
