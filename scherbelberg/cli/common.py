"""What every command shares: API options, one-line errors, tables and JSON.

Imports stay light (click only): rich, hcloud and dask are imported inside the functions that
need them, so that `scherbelberg --help` and the commands' own `--help` start fast.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import warnings
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import ScherbelbergError

if TYPE_CHECKING:
    from rich.console import Console

    from ..cluster.state import ClusterState
    from ..hetzner.session import HetznerSession

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

# Errors whose message says it all (ours, and the standard library's plain ones);
# anything else is shown with its type.
_PLAIN: tuple[type[BaseException], ...] = (
    ScherbelbergError,
    ValueError,
    FileNotFoundError,
    TimeoutError,
)


class CliError(ScherbelbergError, click.ClickException):
    """An error the command reports itself (one line, exit code 1)."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, _PLAIN):
        message = first or type(exc).__name__
    else:
        message = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    if "\n" in text:
        message += " (--debug shows more)"
    return message


def command(name: str, **settings: Any) -> Callable[[F], click.Command]:
    """A click command with `--debug` whose failures are one line on stderr, exit code 1
    (130 after Ctrl-C), without traceback unless `--debug` (here or before the command)."""

    def decorate(function: F) -> click.Command:
        @functools.wraps(function)
        def wrapper(*args: Any, debug: bool, **kwargs: Any) -> Any:
            root = click.get_current_context().find_root()
            debug = debug or bool(root.params.get("debug"))
            _quiet(debug)
            try:
                return function(*args, **kwargs)
            except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
                raise
            except BrokenPipeError:  # `| head`: the group ends it quietly
                raise
            except KeyboardInterrupt:
                if debug:
                    raise
                click.echo("error: interrupted", err=True)
                sys.exit(130)
            except Exception as exc:
                if debug:
                    raise
                click.echo(f"error: {one_line(exc)}", err=True)
                sys.exit(1)

        option = click.option("--debug", is_flag=True, help="Show tracebacks and library logs.")
        return click.command(name, **settings)(option(wrapper))

    return decorate


def _quiet(debug: bool) -> None:
    """Warnings as one line; dask's INFO logs only with --debug."""

    def show(message: Any, category: Any, *_: Any, **__: Any) -> None:
        click.echo(f"warning: {str(message).strip().splitlines()[0]}", err=True)

    if not debug:
        warnings.showwarning = show
        for name in ("distributed", "scherbelberg", "asyncssh", "dask_cloudprovider"):
            logging.getLogger(name).setLevel(logging.ERROR)
        # "exception was never retrieved" of futures cancelled by Ctrl-C: noise, not news
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    else:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)


def api_options(function: F) -> F:
    """`--endpoint` and `--token-env` for commands that talk to the Hetzner API."""
    function = click.option(
        "--token-env",
        metavar="VAR",
        default=None,
        help="Environment variable holding the API token (default: HETZNER, then HCLOUD_TOKEN).",
    )(function)
    return click.option(
        "--endpoint",
        metavar="URL",
        default=None,
        help="Hetzner API endpoint (default: config, HCLOUD_ENDPOINT, else Hetzner).",
    )(function)


def output_option(function: F) -> F:
    return click.option(
        "-o",
        "--output",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Output format: a table for people, or JSON for scripts.",
    )(function)


def token(token_env: str | None) -> str:
    from ..hetzner.session import resolve_token

    return resolve_token(None, token_env)


def endpoint(explicit: str | None, state: ClusterState | None = None) -> str:
    from ..hetzner.session import resolve_endpoint

    if explicit:
        return resolve_endpoint(explicit)
    if state is not None and state.endpoint:
        return state.endpoint
    return resolve_endpoint(None)


def session(
    token_env: str | None, explicit_endpoint: str | None, state: ClusterState | None = None
) -> HetznerSession:
    """A HetznerSession (token and endpoint resolved; the token is never printed)."""
    from ..hetzner.session import HetznerSession

    return HetznerSession(token(token_env), endpoint(explicit_endpoint, state))


def local_state(name: str) -> ClusterState | None:
    """The cluster's local state, or None if this machine has none."""
    from ..cluster.state import ClusterState
    from ..errors import ClusterNotFound

    try:
        return ClusterState.load(name)
    except ClusterNotFound:
        return None


def require_state(name: str) -> ClusterState:
    from ..cluster.state import ClusterState

    return ClusterState.load(name)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coroutine)


# -- rendering --------------------------------------------------------------------------------


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str | None = None,
    right: Sequence[str] = (),
    optional: Sequence[str] = (),
) -> None:
    """A rich table on stdout that never breaks a word (no "schedule / r" at 80 columns).

    A column of single words (names, addresses, numbers) is never wrapped; other cells wrap
    between words. If the table is wider than the terminal, the `optional` columns are left
    out, in that order, and a caption says so; only then is a word that cannot fit shortened
    with an ellipsis."""
    from rich.measure import Measurement

    cells = [["-" if cell is None else str(cell) for cell in row] for row in rows]
    out = console()
    left_out: list[str] = []
    while True:
        grid = _grid(columns, cells, title, right, left_out)
        # the width it wants, not the terminal's width it would be squeezed into
        width = Measurement.get(out, out.options.update_width(10**6), grid).maximum
        more = [c for c in optional if c not in left_out]
        if width <= out.width or not more:
            break
        left_out.append(more[0])
    if left_out:
        grid.caption = f"{', '.join(left_out)} left out to fit; -o json shows everything"
    out.print(grid)


def _grid(
    columns: Sequence[str],
    cells: list[list[str]],
    title: str | None,
    right: Sequence[str],
    left_out: Sequence[str],
) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    grid = Table(
        title=title,
        title_justify="left",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,  # two spaces between columns, not three
    )
    shown = [i for i, column in enumerate(columns) if column not in left_out]
    for i in shown:
        words = all(" " not in row[i].strip() for row in cells)
        grid.add_column(
            columns[i],
            justify="right" if columns[i] in right else "left",
            overflow="ellipsis",
            no_wrap=words,
        )
    for row in cells:
        grid.add_row(*(Text(row[i]) for i in shown))  # as it is: no markup, no :emoji:
    return grid


def money(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"€{value:.{digits}f}"


def age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600}h"


def confirm(question: str, yes: bool) -> None:
    """Ask unless --yes; without a terminal to ask on, refuse rather than guess."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise CliError(f"{question.rstrip('?')}: not confirmed (pass --yes to run without asking)")
    if not click.confirm(question, default=False, err=True):
        raise CliError("cancelled, nothing was deleted")


def yes_option(function: F) -> F:
    return click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")(function)
