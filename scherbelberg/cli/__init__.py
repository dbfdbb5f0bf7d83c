"""The `scherbelberg` command line. Sub-commands import what they need only when they run,
so `scherbelberg --help` stays fast."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ..version import __version__


class LazyGroup(click.Group):
    """A group whose sub-commands live in modules imported on first use."""

    lazy: dict[str, tuple[str, str, str]] = {
        # name: (module, attribute, short help)
        "catalog": (
            "scherbelberg.cli.catalog",
            "catalog_command",
            "Locations and server types with prices.",
        ),
        "cleanup": (
            "scherbelberg.cli.cleanup",
            "cleanup_command",
            "Delete resources left by crashes (no live cluster).",
        ),
        "client": (
            "scherbelberg.cli.connect",
            "client_command",
            "Print how to connect a Dask Client (-o json for scripts).",
        ),
        "create": ("scherbelberg.cli.create", "create_command", "Create a cluster that persists."),
        "dashboard": (
            "scherbelberg.cli.connect",
            "dashboard_command",
            "Open an SSH tunnel to a cluster's dashboard.",
        ),
        "destroy": (
            "scherbelberg.cli.destroy",
            "destroy_command",
            "Delete a cluster (or --all) by label.",
        ),
        "image": (
            "scherbelberg.cli.image",
            "image_command",
            "Environment images: snapshots whose nodes skip the install (build, ls, delete).",
        ),
        "logs": (
            "scherbelberg.cli.remote",
            "logs_command",
            "Show a node's bootstrap log and Dask service journal.",
        ),
        "ls": ("scherbelberg.cli.ls", "ls_command", "List clusters, nodes and their cost."),
        "reap": (
            "scherbelberg.cli.reap",
            "reap_command",
            "Delete clusters past their TTL or idle timeout (for cron / --install-timer).",
        ),
        "scale": ("scherbelberg.cli.scale", "scale_command", "Set a cluster's worker count."),
        "scp": ("scherbelberg.cli.remote", "scp_command", "Copy files to or from a node."),
        "ssh": ("scherbelberg.cli.remote", "ssh_command", "A shell or command on a node."),
        "demo": (
            "scherbelberg.cli.demo",
            "demo_command",
            "Try scherbelberg here: a cluster on the embedded local Hetzner, then delete it.",
        ),
        "emulator": (
            "scherbelberg.emulator.command_line",
            "emulator_command",
            "Run the local Hetzner (API emulator with real machines) in the foreground.",
        ),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            import importlib

            module, attribute, _ = self.lazy[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """`scherbelberg --help | head -1` and `--version`: output while parsing, see invoke."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except BrokenPipeError:
            _reader_gone()
            raise click.exceptions.Exit(0) from None

    def invoke(self, ctx: click.Context) -> Any:
        """`scherbelberg ls | head -1`: when the reader goes away, stop quietly with status 0
        like any Unix tool (click would exit 1, and Python would print a BrokenPipeError)."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _reader_gone()
            ctx.exit(0)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.lazy[name][2]) for name in sorted(self.lazy)]
        rows += [
            (name, cmd.get_short_help_str())
            for name, cmd in sorted(self.commands.items())
            if name not in self.lazy
        ]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


def _reader_gone() -> None:
    """The Python docs' recipe for a closed pipe: nothing more may reach it, not even the
    interpreter's final flush of what is still buffered."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="scherbelberg")
@click.option("--debug", is_flag=True, help="Show tracebacks and library logs.")
def main(debug: bool) -> None:
    """Deploy and manage Dask clusters on the Hetzner Cloud."""
