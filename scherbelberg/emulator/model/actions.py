"""Actions: Hetzner's handles for work that takes time.

An action is created `running`, does its real work (the machine backend) and its simulated
duration (the latency profile) concurrently, then ends `success` or `error`. Clients poll it;
its `progress` grows with time so a progress bar moves as it does on Hetzner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from scherbelberg.errors import EmulatorError

log = logging.getLogger(__name__)

Work = Callable[[], Awaitable[None]]


class ActionFailed(EmulatorError):
    """Raised by an action's work to end the action in `error` with this code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Action:
    id: int
    project_id: int
    command: str
    resources: list[tuple[int, str]]  # (id, type)
    duration: float
    started: float = field(default_factory=time.time)
    status: str = "running"
    finished: float | None = None
    error: tuple[str, str] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def progress(self) -> int:
        if self.status != "running":
            return 100
        if self.duration <= 0:
            return 0
        return min(99, int(100 * (time.time() - self.started) / self.duration))

    def succeed(self) -> None:
        self.status, self.finished = "success", time.time()
        self.done.set()

    def fail(self, code: str, message: str) -> None:
        self.status, self.finished = "error", time.time()
        self.error = (code, message)
        self.done.set()


class ActionRunner:
    """Starts and tracks the background tasks behind actions, so shutdown can cancel them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        async def wrapper() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(wrapper())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def run(
        self,
        action: Action,
        work: Work | None = None,
        *,
        after: Action | None = None,
        fails: bool = False,
        on_success: Callable[[], None] | None = None,
        on_error: Callable[[], None] | None = None,
        hold: bool = False,
    ) -> None:
        """Run `work` and wait `action.duration`; then end the action.

        `after`: an action that must succeed first (a server's `start_server` waits for its
        `create_server`). `fails`: injected fault, the action ends in `error`. `hold`: never
        finish (a server stuck in `initializing`).
        """

        async def drive() -> None:
            try:
                if after is not None:
                    await after.done.wait()
                    if after.status != "success":
                        raise ActionFailed(
                            "action_failed", f"{after.command} (action {after.id}) failed"
                        )
                if hold:
                    await asyncio.Event().wait()
                started = time.monotonic()
                if fails:
                    await asyncio.sleep(action.duration)
                    raise ActionFailed("action_failed", f"{action.command} failed (injected)")
                if work is not None:
                    await work()
                rest = action.duration - (time.monotonic() - started)
                if rest > 0:
                    await asyncio.sleep(rest)
            except asyncio.CancelledError:
                action.fail("action_failed", f"{action.command} cancelled: emulator stopping")
                raise
            except ActionFailed as exc:
                if on_error is not None:
                    on_error()
                action.fail(exc.code, exc.message)
                return
            except Exception as exc:  # a machine that would not start is a failed action
                log.exception("action %s (%s) failed", action.id, action.command)
                if on_error is not None:
                    on_error()
                action.fail("action_failed", f"{action.command} failed: {exc}")
                return
            # state first, then the action: a client that sees `success` sees the new state
            if on_success is not None:
                on_success()
            action.succeed()

        self.spawn(drive())

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
