"""The `scherbelberg emulator` command (also `python -m scherbelberg.emulator`)."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click
import yaml

from .faults import Faults, availability_profile, parse_http_fault
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
    help="Answer requests whose path matches PATH with STATUS (429/500/502/503/504; 200: "
    "served after DELAY; 0: no answer, the connection closes after DELAY).",
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
@click.option("--build-image", is_flag=True, help="Build (or check) the machine images, then exit.")
@click.option(
    "--background",
    is_flag=True,
    help='Run detached until --stop, and print `export` lines for a shell: eval "$(scherbelberg '
    'emulator --background)". Also written to emulator.env (see docs/emulator.md).',
)
@click.option(
    "--stop", is_flag=True, help="Stop the emulator --background started, and its machines."
)
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
    """Run the local Hetzner in the foreground until Ctrl-C, or detached with --background.

    Prints HCLOUD_ENDPOINT and HCLOUD_TOKEN first, for hcloud-python, the hcloud CLI and
    scherbelberg itself, then the dask config of a cluster on it. A shell gets all of it in
    one step with: eval "$(scherbelberg emulator --background)".
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
        _build_interpreters()
        _build_conda_channel()
        _remove_stale_artefacts()
        return
    _exclusive(background=background, stop=stop, cleanup=cleanup, build_image=build_image)
    if stop:
        _stop()
        return
    try:
        faults = _faults(
            faults_file, http_faults, fail_action, stuck_initializing, unavailable, seed
        )
        faults.unavailable |= availability_profile(availability)
        if release_delay is not None:
            faults.release_delay = release_delay
        if chaos:
            faults.chaos = True
    except (ValueError, TypeError, yaml.YAMLError) as exc:
        raise click.UsageError(f"bad fault settings: {exc}") from None
    if background:
        _background(_foreground_args(click.get_current_context()))
        return
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
    """Build every machine image the tests boot (image.PREBUILT), so CI builds once; others
    are built on first use. Images of a foreign architecture need qemu-user-static; a failure
    there is reported and skipped (they are built on first use), a failure of a native one
    fails."""
    from .machines.image import PREBUILT, ensure_image, host_arch, recipe
    from .machines.nspawn import missing_requirements

    missing = missing_requirements()
    if missing:
        click.echo("error: cannot build the machine image: " + "; ".join(missing), err=True)
        sys.exit(2)
    recipes = [recipe(name, arch) for name, arch in PREBUILT]
    for r in sorted(recipes, key=lambda r: r.arch != host_arch()):  # native first
        try:
            path = ensure_image(r.name, r.arch, lambda message: click.echo(message, err=True))
        except Exception as exc:
            if r.arch == host_arch():
                raise
            click.echo(f"machine image {r.label} not built: {exc}", err=True)
            continue
        click.echo(f"machine image ready: {path}")


def _build_interpreters() -> None:
    """The CPython archive the lab serves to uv (interpreters.py): minutes the first time."""
    from .interpreters import ensure_archive

    archive = ensure_archive(lambda message: click.echo(message, err=True))
    click.echo(f"uv's Python {archive.version} ready: {archive.filename}")


def _build_conda_channel() -> None:
    """The conda channel the lab serves (conda_channel.py), from the interpreter and wheels."""
    from .conda_channel import ensure_channel

    channel = ensure_channel(lambda message: click.echo(message, err=True))
    click.echo(f"conda channel ready: {channel}")


def _remove_stale_artefacts(
    images: Path | None = None, interpreter_dir: Path | None = None, conda_dir: Path | None = None
) -> None:
    """Older recipes' artefacts (~300 MB an image) and dead builds are never used again."""
    from . import conda_channel, interpreters
    from .build_cache import KEY, remove_stale_artefacts
    from .machines.image import IMAGE_DIR_NAME, RECIPES, image_dir, image_path

    root = images or image_dir()
    current = {image_path(r, root).parent.name for r in RECIPES.values()}
    remove_stale_artefacts(root, "image", IMAGE_DIR_NAME, current, click.echo)
    archives = interpreters.archive_dir(interpreter_dir)
    remove_stale_artefacts(archives.parent, "interpreter archive", KEY, {archives.name}, click.echo)
    channel = conda_channel.channel_dir(conda_dir)
    remove_stale_artefacts(channel.parent, "conda channel", KEY, {channel.name}, click.echo)


def _exclusive(**flags: bool) -> None:
    """--background, --stop, --cleanup and --build-image are different things to do."""
    given = [f"--{name.replace('_', '-')}" for name, on in flags.items() if on]
    if len(given) > 1:
        raise click.UsageError(f"{' and '.join(given)} cannot be combined")


def _foreground_args(ctx: click.Context) -> list[str]:
    """The options given here, for the emulator that runs in the background."""
    args: list[str] = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name in ("background", "stop"):
            continue
        if ctx.get_parameter_source(param.name or "") != click.core.ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[param.name or ""]
        name = param.opts[0]
        if param.is_flag:
            args += [name] if value else []
        elif param.multiple:
            for item in value:
                args += [name, str(item)]
        else:  # a file is read by the emulator, in this directory or not
            args += [name, str(value.resolve() if isinstance(value, Path) else value)]
    return args


def _background(args: list[str]) -> None:
    from .daemon import DaemonError, RunFiles, run_dir, start

    files = RunFiles(run_dir())
    try:
        started = start(args, files, say=lambda message: click.echo(message, err=True))
    except DaemonError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("error: interrupted; the local Hetzner was stopped again", err=True)
        sys.exit(130)
    if started.already:
        click.echo(
            f"a local Hetzner runs already (pid {started.pid}); these are its settings "
            f"(also in {files.env})",
            err=True,
        )
    else:
        click.echo(
            f"local Hetzner ready in the background (pid {started.pid}); settings also in "
            f"{files.env}; `scherbelberg emulator --stop` deletes its machines and stops it",
            err=True,
        )
    click.echo(started.exports, nl=False)


def _stop() -> None:
    from .daemon import DaemonError, stop

    try:
        pid = stop()
    except DaemonError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if pid is None:
        click.echo("no local Hetzner runs in the background", err=True)
    else:
        click.echo(f"local Hetzner stopped (pid {pid}), its machines deleted", err=True)
