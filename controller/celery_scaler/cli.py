"""The `celery-scaler` command: parses options, delegates, renders. Nothing else."""

from __future__ import annotations

import json
import os
import sys
import time
from enum import StrEnum
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from .config import CONFIG_ENV, DEFAULT_CONFIG_PATH, Config, ConfigError, json_schema, parse_config
from .ports import AdapterError

app = typer.Typer(
    name="celery-scaler",
    help="Keeps Celery worker fleets on AWS ECS sized to their work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(
    help="Check, describe and start a configuration file.", no_args_is_help=True
)
app.add_typer(config_app, name="config")

EXIT_OK, EXIT_POOL_FAILED, EXIT_USAGE = 0, 1, 2

stdout = Console()
stderr = Console(stderr=True)


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar=CONFIG_ENV,
        help=f"Configuration file [default: ./{DEFAULT_CONFIG_PATH}].",
        show_default=False,
    ),
]


def fail(message: str, code: int) -> NoReturn:
    stderr.print(Text.assemble(("error: ", "red"), message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_config(path: Path | None) -> Config:
    path = path or Path(DEFAULT_CONFIG_PATH)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"configuration file {path} not found (use --config or ${CONFIG_ENV})", EXIT_USAGE)
    except OSError as exc:
        fail(f"cannot read configuration file {path}: {exc.strerror}", EXIT_USAGE)
    try:
        return parse_config(text, str(path), env=os.environ)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


@app.command()
def reconcile(
    config: ConfigOption = None,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Decide and report; change nothing on ECS.")
    ] = False,
    output: Annotated[Output, typer.Option("--output", "-o", help="table or json")] = Output.TABLE,
    pool: Annotated[str | None, typer.Option("--pool", help="Only this WorkerPool.")] = None,
) -> None:
    """Observe queues, workers and ECS; set each service's desired count."""
    # Imported here so `config` commands start without loading Celery and the AWS SDK.
    from .compose import build
    from .render import print_report
    from .runner import run_forever, run_once, stop_on_signals

    settings = load_config(config)
    try:
        only = [settings.pool(pool)] if pool else None
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        reconciler = build(settings)
    except AdapterError as exc:
        fail(str(exc), EXIT_POOL_FAILED)

    reporters = [partial(print_report, stdout, output=output.value)]
    if once:
        report = run_once(reconciler, reporters, dry_run=dry_run, only=only)
        failed = any(result.error for result in report.results)
        raise typer.Exit(EXIT_POOL_FAILED if failed else EXIT_OK)

    with stop_on_signals() as stop:
        run_forever(reconciler, stop, reporters, dry_run=dry_run, only=only)


@app.command()
def status(
    config: ConfigOption = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="table or json")] = Output.TABLE,
) -> None:
    """Each pool's conditions, counts, last action and cooldowns, read from ECS."""
    from .compose import build_ecs
    from .render import status_table
    from .status import pool_status

    settings = load_config(config)
    try:
        ecs = build_ecs(settings)
    except AdapterError as exc:
        fail(str(exc), EXIT_POOL_FAILED)
    now = time.time()
    statuses = []
    for pool in settings.pools:
        try:
            service = ecs.describe(pool.spec.ecs.cluster, pool.spec.ecs.service)
        except AdapterError as exc:
            statuses.append(pool_status(pool, None, now, error=str(exc)))
        else:
            statuses.append(pool_status(pool, service, now))
    if output is Output.JSON:
        print("\n".join(json.dumps(s.to_json(), sort_keys=True) for s in statuses), flush=True)
    else:
        stdout.print(status_table(statuses, now))
    raise typer.Exit(EXIT_POOL_FAILED if any(s.error for s in statuses) else EXIT_OK)


@app.command()
def demo(
    redis: Annotated[
        str | None,
        typer.Option(
            "--redis",
            help="Redis URL [default: 127.0.0.1:6379 if it answers, else a private redis-server].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """The whole loop on this machine: Redis, a local AWS API, real workers, the controller."""
    from .demo import DemoError, DemoSettings, run_demo, summary_text
    from .runner import stop_on_signals

    try:
        with stop_on_signals() as stop:
            summary = run_demo(DemoSettings(redis_url=redis), stdout, stop)
    except DemoError as exc:
        fail(str(exc), EXIT_POOL_FAILED)
    stdout.print(summary_text(summary), highlight=False, soft_wrap=True)


@config_app.command()
def validate(config: ConfigOption = None) -> None:
    """Check a configuration file; exit 2 with the document and field at fault."""
    settings = load_config(config)
    pools = ", ".join(pool.name for pool in settings.pools)
    stdout.print(f"configuration is valid: {len(settings.pools)} pool(s): {pools}", highlight=False)


@config_app.command()
def schema() -> None:
    """Print the JSON Schema of a configuration document."""
    print(json.dumps(json_schema(), indent=2))


@config_app.command()
def example() -> None:
    """Print an annotated example configuration."""
    sys.stdout.write(files("celery_scaler").joinpath("example.yaml").read_text(encoding="utf-8"))


def main() -> None:
    app()
