"""The `scherbelberg emulator` command (also `python -m scherbelberg.emulator`)."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click
import yaml

from .faults import Faults, availability_profile, chaos_faults, parse_http_fault
from .latency import PROFILES


def _faults(
    faults_file: Path | None,
    http: tuple[str, ...],
    failing_actions: tuple[str, ...],
    stuck: str | None,
    unavailable: tuple[str, ...],
    seed: int | None,
) -> Faults:
    data: dict[str, object] = {}
    if faults_file is not None:
        loaded = yaml.safe_load(faults_file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise click.BadParameter("must hold a mapping", param_hint="--faults")
        data = loaded
    faults = Faults.from_json({**data, **({"seed": seed} if seed is not None else {})})
    try:
        faults.http.extend(parse_http_fault(text) for text in http)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fault") from None
    for item in failing_actions:
        command, _, rate = item.partition(":")
        faults.failing_actions[command] = float(rate or 1.0)
    if stuck is not None:
        faults.stuck_initializing = stuck
    for pair in unavailable:
        server_type, sep, location = pair.partition("@")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not TYPE@LOCATION", param_hint="--unavailable")
        faults.unavailable.add((server_type, location))
    return faults


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve the API on.")
@click.option("--port", default=0, type=int, help="Port to serve on (default: a free one).")
@click.option(
    "--latency-profile",
    type=click.Choice(sorted(PROFILES)),
    default="instant",
    show_default=True,
    help="instant for tests; realistic for Hetzner-like action and boot times.",
)
@click.option(
    "--machines",
    type=click.Choice(["nspawn", "none"]),
    default="nspawn",
    show_default=True,
    help="nspawn: servers are real machines; none: API only, no machines.",
)
@click.option("--token", default=None, help="Token of the default project (default: random).")
@click.option(
    "--faults",
    "faults_file",
    type=click.Path(path_type=Path, exists=True),
    help="YAML file of faults.",
)
@click.option(
    "--fault",
    "http_faults",
    multiple=True,
    metavar="PATH:STATUS[:RATE[:DELAY]]",
    help="Answer requests whose path matches PATH with STATUS (429/500/502/503/504).",
)
@click.option(
    "--fail-action",
    multiple=True,
    metavar="COMMAND[:RATE]",
    help="Make actions of COMMAND (e.g. create_server) end in error.",
)
@click.option(
    "--stuck-initializing",
    default=None,
    metavar="NAME_REGEX",
    help="Servers whose name matches never leave initializing.",
)
@click.option(
    "--unavailable",
    multiple=True,
    metavar="TYPE@LOCATION",
    help="This server type cannot be ordered in this location (globs: cx*@fsn1): 412 "
    "resource_unavailable, and not in the datacenter's available list.",
)
@click.option(
    "--availability",
    default=None,
    metavar="PROFILE",
    help="A named shortage, e.g. 2026-eu-shortage (CX and CAX unorderable in fsn1, nbg1, hel1).",
)
@click.option(
    "--release-delay",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="After a server's deletion, its firewall, network and placement group answer "
    "resource_in_use this long (realistic profile: 5).",
)
@click.option(
    "--chaos",
    is_flag=True,
    help="Low-rate 500/502/503/504, 429s and slow answers on every path (with --seed).",
)
@click.option("--seed", type=int, default=None, help="Seed for fault randomness.")
@click.option(
    "--cleanup",
    is_flag=True,
    help="Remove what crashed local Hetzners left (machines, namespaces, mounts), then exit.",
)
@click.option("--dry-run", is_flag=True, help="With --cleanup: only list the leftovers.")
@click.option("--build-image", is_flag=True, help="Build (or check) the machine image, then exit.")
@click.option(
    "--background",
    is_flag=True,
    help='Run detached and print `export` lines for a shell: eval "$(scherbelberg emulator '
    '--background)". Also written to /run/scherbelberg/emulator.env.',
)
@click.option("--stop", is_flag=True, help="Stop the emulator that --background started.")
@click.option("--debug", is_flag=True, help="Log machine steps and errors in detail.")
def emulator_command(
    host: str,
    port: int,
    latency_profile: str,
    machines: str,
    token: str | None,
    faults_file: Path | None,
    http_faults: tuple[str, ...],
    fail_action: tuple[str, ...],
    stuck_initializing: str | None,
    unavailable: tuple[str, ...],
    availability: str | None,
    release_delay: float | None,
    chaos: bool,
    seed: int | None,
    cleanup: bool,
    dry_run: bool,
    build_image: bool,
    background: bool,
    stop: bool,
    debug: bool,
) -> None:
    """Run the local Hetzner in the foreground until Ctrl-C.

    Prints HCLOUD_ENDPOINT and HCLOUD_TOKEN first, for hcloud-python, the hcloud CLI and
    scherbelberg itself.
    """
    from .service import EmulatorOptions, MachinesUnavailable, serve

    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if cleanup:
        _cleanup(dry_run)
        return
    if build_image:
        _build_image()
        return
    if background or stop:
        _daemon(background, stop)
        return
    try:
        faults = _faults(
            faults_file, http_faults, fail_action, stuck_initializing, unavailable, seed
        )
        faults.unavailable |= availability_profile(availability)
        if release_delay is not None:
            faults.release_delay = release_delay
        if chaos:
            faults.http.extend(chaos_faults())
    except (ValueError, TypeError, yaml.YAMLError) as exc:
        raise click.UsageError(f"bad fault settings: {exc}") from None
    options = EmulatorOptions(
        host=host,
        port=port,
        latency=PROFILES[latency_profile],
        faults=faults,
        machines=machines,
        token=token,
    )
    try:
        asyncio.run(serve(options))
    except MachinesUnavailable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


def _cleanup(dry_run: bool) -> None:
    from .machines.cleanup import find_leftovers, remove_leftovers

    leftovers = find_leftovers() if dry_run else remove_leftovers()
    verb = "found" if dry_run else "removed"
    if not leftovers:
        click.echo("no leftovers of crashed local Hetzners")
        return
    for item in leftovers:
        click.echo(f"{verb} leftover {item.kind}: {item.what}")
    click.echo(f"{len(leftovers)} leftover(s) {verb}")


def _build_image() -> None:
    from .machines.image import ensure_base_image
    from .machines.nspawn import missing_requirements

    missing = missing_requirements()
    if missing:
        click.echo("error: cannot build the machine image: " + "; ".join(missing), err=True)
        sys.exit(2)
    path = ensure_base_image(lambda message: click.echo(message, err=True))
    click.echo(f"machine image ready: {path}")


def _daemon(background: bool, stop: bool) -> None:
    from .daemon import DaemonError, running_pid, start
    from .daemon import stop as stop_daemon

    try:
        if stop:
            stopped = stop_daemon()
            click.echo("local Hetzner stopped" if stopped else "no local Hetzner runs", err=True)
            return
        if running_pid() is not None:
            click.echo("a local Hetzner runs already: its settings are", err=True)
        # every option but --background, for the emulator in the foreground of its own
        args = [a for a in sys.argv[1:] if a != "--background"]
        if "emulator" in args:  # `scherbelberg [--debug] emulator …`
            args = args[args.index("emulator") + 1 :]
        click.echo(start(args), nl=False)
    except DaemonError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
