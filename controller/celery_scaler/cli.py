"""The `celery-scaler` command: parses options, delegates, renders. Nothing else."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from celery_scaler.adapters.permissions import Tool
from celery_scaler.core.errors import AdapterError, ConfigError
from celery_scaler.core.names import CONFIG_ENV, DEFAULT_CONFIG_PATH
from celery_scaler.telemetry.logs import LogFormat, LogLevel

if TYPE_CHECKING:
    # The configuration model (pydantic) is imported where a command reads a file, so that
    # `--help` starts without building it.
    from celery_scaler.alarms.aws import AutoScalingFallback, CloudWatchAlarms
    from celery_scaler.alarms.desired import Actual, Change, Plan, Resource
    from celery_scaler.analysis.documents import Document
    from celery_scaler.core.config import Config, WorkerPool

app = typer.Typer(
    # Plain help text: rich markup would swallow every "[default: …]" as a tag.
    rich_markup_mode=None,
    name="celery-scaler",
    help="Keeps Celery worker fleets on AWS ECS sized to their work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(
    rich_markup_mode=None,
    help="Check, describe and start a configuration file.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")
alarms_app = typer.Typer(
    rich_markup_mode=None,
    help="The CloudWatch alarms and the scale-out fallback the controller owns.",
    no_args_is_help=True,
)
app.add_typer(alarms_app, name="alarms")

EXIT_OK, EXIT_POOL_FAILED, EXIT_USAGE = 0, 1, 2

stdout = Console()
stderr = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from celery_scaler import __version__

        sys.stdout.write(f"celery-scaler {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            # Eager: it answers before a subcommand is required or any option is checked.
            is_eager=True,
            callback=_print_version,
            help="Print the installed version and exit.",
        ),
    ] = False,
) -> None:
    pass


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="<path>",
        envvar=CONFIG_ENV,
        help=f"Configuration file [default: ./{DEFAULT_CONFIG_PATH}].",
        show_default=False,
    ),
]


def fail(message: str, code: int) -> NoReturn:
    stderr.print(Text.assemble(("error: ", "red"), message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


CONFIG_FROM_ENV = "env:"
"""`--config env:NAME` reads the configuration from the environment variable NAME."""


def load_config(path: Path | None) -> Config:
    from celery_scaler.core.config import parse_config

    path = path or Path(DEFAULT_CONFIG_PATH)
    if str(path).startswith(CONFIG_FROM_ENV):
        # `env:NAME`: the file's text in a variable, for containers with no volume (ECS).
        variable = str(path).removeprefix(CONFIG_FROM_ENV)
        text = os.environ.get(variable, "")
        if not text.strip():
            fail(f"{path}: the environment variable {variable} is not set or empty", EXIT_USAGE)
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            fail(f"configuration file {path} not found (use --config or ${CONFIG_ENV})", EXIT_USAGE)
        except OSError as exc:
            fail(f"cannot read configuration file {path}: {exc.strerror}", EXIT_USAGE)
        except UnicodeDecodeError as exc:
            fail(
                f"configuration file {path} is not UTF-8 text "
                f"(byte {exc.object[exc.start]:#04x} at offset {exc.start})",
                EXIT_USAGE,
            )
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
    pool: Annotated[
        str | None, typer.Option("--pool", metavar="<name>", help="Only this WorkerPool.")
    ] = None,
    log_format: Annotated[
        LogFormat | None,
        typer.Option(
            "--log-format",
            help="Logs on stderr as json or text [default: text on a terminal, else json].",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(
            "--log-level",
            help="debug, info, warning or error [default: info; warning with --once].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Observe queues, workers and ECS; set each service's desired count."""
    # Imported here so `config` commands start without loading Celery and the AWS SDK.
    from celery_scaler.compose import build, build_telemetry
    from celery_scaler.engine.runner import (
        Reporter,
        release_leases,
        run_forever,
        run_once,
        stop_on_signals,
    )
    from celery_scaler.tables import print_report
    from celery_scaler.telemetry.logs import configure_logging

    settings = load_config(config)
    try:
        only = [settings.pool(pool)] if pool else None
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    # A single pass already prints every pool: its logs default to what went wrong.
    configure_logging(log_level or (LogLevel.WARNING if once else LogLevel.INFO), log_format)
    try:
        reconciler = build(settings)
        telemetry = build_telemetry(settings, only or settings.pools, continuous=not once)
    except AdapterError as exc:
        fail(str(exc), EXIT_POOL_FAILED)

    reporters: list[Reporter] = [partial(print_report, stdout, output=output.value), telemetry]
    with telemetry:
        if once:
            try:
                report = run_once(reconciler, reporters, dry_run=dry_run, only=only)
            finally:
                release_leases(reconciler)
            failed = any(result.error for result in report.results)
            raise typer.Exit(EXIT_POOL_FAILED if failed else EXIT_OK)

        with stop_on_signals() as stop:
            run_forever(reconciler, stop, reporters, dry_run=dry_run, only=only)


@app.command()
def status(
    config: ConfigOption = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="table or json")] = Output.TABLE,
    pool: Annotated[
        str | None, typer.Option("--pool", metavar="<name>", help="Only this WorkerPool.")
    ] = None,
) -> None:
    """Each pool's conditions, counts, last action and cooldowns, read from ECS."""
    from celery_scaler.compose import build_ecs, build_leases
    from celery_scaler.core.status import pool_status
    from celery_scaler.tables import last_actions, status_table

    settings = load_config(config)
    try:
        pools = [settings.pool(pool)] if pool else list(settings.pools)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        ecs = build_ecs(settings)
    except AdapterError as exc:
        fail(str(exc), EXIT_POOL_FAILED)
    now = time.time()
    leaders: dict[str, str] = {}
    if settings.controller.leader_election.enabled:
        try:
            leaders = build_leases(settings).owners()
        except AdapterError as exc:
            stderr.print(Text(f"warning: lease owners unknown: {exc}", style="yellow"))
    statuses = []
    for one in pools:
        leader = leaders.get(one.name)
        try:
            service = ecs.describe(one.spec.ecs.cluster, one.spec.ecs.service)
        except AdapterError as exc:
            statuses.append(pool_status(one, None, now, error=str(exc), leader=leader))
        else:
            statuses.append(pool_status(one, service, now, leader=leader))
    if output is Output.JSON:
        print("\n".join(json.dumps(s.to_json(), sort_keys=True) for s in statuses), flush=True)
    else:
        stdout.print(status_table(statuses, now))
        stdout.print(last_actions(statuses, now), end="", soft_wrap=True)
    raise typer.Exit(EXIT_POOL_FAILED if any(s.error for s in statuses) else EXIT_OK)


@app.command()
def demo(
    redis: Annotated[
        str | None,
        typer.Option(
            "--redis",
            metavar="<url>",
            help="Redis URL [default: 127.0.0.1:6379 if it answers, else a private redis-server].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """The whole loop on this machine: Redis, a local AWS API, real workers, the controller."""
    from celery_scaler.engine.runner import stop_on_signals
    from celery_scaler.local.demo import DemoError, DemoSettings, run_demo, summary_text

    try:
        with stop_on_signals() as stop:
            summary = run_demo(DemoSettings(redis_url=redis), stdout, stop)
    except DemoError as exc:
        fail(str(exc), EXIT_POOL_FAILED)
    stdout.print(summary_text(summary), highlight=False, soft_wrap=True)


class Format(StrEnum):
    TABLE = "table"
    MARKDOWN = "markdown"
    JSON = "json"
    HTML = "html"


class Compare(StrEnum):
    ALARM_PATH = "alarm-path"


PoolOption = Annotated[
    str | None,
    typer.Option(
        "--pool",
        metavar="<name>",
        help="The WorkerPool [default: the only one in the configuration].",
    ),
]
FormatOption = Annotated[Format, typer.Option("--format", "-f", help="table|markdown|json|html")]
OutOption = Annotated[
    Path | None,
    typer.Option("--out", metavar="<path>", help="Write the report to this file, not stdout."),
]
ChartOption = Annotated[
    Path | None,
    typer.Option("--chart", metavar="<path>", help="Also draw the chart as a PNG to this file."),
]


def one_pool(settings: Config, name: str | None) -> WorkerPool:
    if name is not None:
        try:
            return settings.pool(name)
        except ConfigError as exc:
            fail(str(exc), EXIT_USAGE)
    if len(settings.pools) > 1:
        names = ", ".join(pool.name for pool in settings.pools)
        fail(
            f"the configuration has {len(settings.pools)} pools ({names}); pick one with --pool",
            EXIT_USAGE,
        )
    return settings.pools[0]


def emit_document(
    document: Document,
    data: dict[str, Any],
    draw: Callable[[], bytes],
    fmt: Format,
    out: Path | None,
    chart: Path | None,
) -> None:
    """Write a report or simulation in `fmt` (to `out` or stdout) and its chart."""
    from celery_scaler.analysis.charts import ChartsUnavailable
    from celery_scaler.analysis.documents import html_page, json_text, markdown, print_document

    pictures: list[bytes] = []
    hint = None
    if chart is not None or fmt is Format.HTML:
        try:
            pictures.append(draw())
        except ChartsUnavailable as exc:
            hint = str(exc)
            if chart is None:  # only the HTML page's chart: a note, not a failure
                stderr.print(Text(f"note: no chart drawn: {hint}"), soft_wrap=True)
    try:
        if chart is not None and pictures:
            chart.write_bytes(pictures[0])
        if fmt is Format.TABLE and out is None:
            print_document(stdout, document)
        elif fmt is Format.TABLE and out is not None:
            with out.open("w", encoding="utf-8") as handle:
                print_document(Console(file=handle, width=160), document)
        else:
            text = {
                Format.JSON: lambda: json_text(data),
                Format.MARKDOWN: lambda: markdown(document),
                Format.HTML: lambda: html_page(document, pictures, hint),
            }[fmt]()
            if out is None:
                sys.stdout.write(text)
            else:
                out.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {exc.filename}: {exc.strerror}", EXIT_USAGE)
    if chart is not None and not pictures:
        # Asked for by name and not drawn: the document is written, the command is not ok.
        fail(f"--chart {chart}: not drawn: {hint}", EXIT_USAGE)


@app.command()
def report(
    config: ConfigOption = None,
    pool: PoolOption = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="<duration>",
            help="How far back, such as 24h or 90m [default: 24h].",
            show_default=False,
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start", metavar="<time>", help="ISO 8601 time (UTC unless it says) or epoch seconds."
        ),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", metavar="<time>", help="Like --start [default: now].")
    ] = None,
    fmt: FormatOption = Format.TABLE,
    out: OutOption = None,
    chart: ChartOption = None,
) -> None:
    """Dry run over history: what the controller would have done, from CloudWatch metrics."""
    from celery_scaler.analysis.charts import report_chart
    from celery_scaler.analysis.documents import report_document, report_json
    from celery_scaler.analysis.replay import ReportError, read_history, replay, report_window
    from celery_scaler.compose import build_history

    settings = load_config(config)
    chosen = one_pool(settings, pool)
    now = time.time()
    try:
        begin, finish = report_window(since, start, end, now)
        history = read_history(
            build_history(settings), chosen, settings.controller, begin, finish, now
        )
    except ReportError as exc:
        fail(str(exc), EXIT_USAGE)
    except AdapterError as exc:
        fail(str(exc), EXIT_POOL_FAILED)
    if not history.metric.points:
        fail(
            f"no {chosen.spec.scaling_policies[0].metric.value} datapoints for "
            f"Pool={chosen.name} in CloudWatch "
            f"namespace {settings.controller.cloudwatch.namespace} over that time: is the "
            "controller publishing its metrics there?",
            EXIT_POOL_FAILED,
        )
    result = replay(chosen, history)
    emit_document(
        report_document(result), report_json(result), lambda: report_chart(result), fmt, out, chart
    )


@app.command()
def simulate(
    config: ConfigOption = None,
    pool: PoolOption = None,
    trace: Annotated[
        Path | None,
        typer.Option(
            "--trace",
            metavar="<path>",
            help="CSV rows: timestamp, count[, mean duration].",
            show_default=False,
        ),
    ] = None,
    pattern: Annotated[
        str | None,
        typer.Option(
            "--pattern",
            metavar="<steady|burst|diurnal|spiky>",
            help="Generate the load in this shape instead of reading a trace.",
            show_default=False,
        ),
    ] = None,
    compare: Annotated[
        Compare | None, typer.Option("--compare", help="Also run the original setup: alarm-path.")
    ] = None,
    fmt: FormatOption = Format.TABLE,
    out: OutOption = None,
    chart: ChartOption = None,
    seed: Annotated[
        int, typer.Option("--seed", metavar="<n>", help="Same seed, same simulation.")
    ] = 0,
    rate: Annotated[
        float,
        typer.Option("--rate", metavar="<per second>", help="Patterns: mean tasks per second."),
    ] = 2.0,
    length: Annotated[
        str, typer.Option("--duration", metavar="<duration>", help="Patterns: how long.")
    ] = "24h",
    task_duration: Annotated[
        str,
        typer.Option(
            "--task-duration",
            metavar="<duration>",
            help="Mean task run time, unless the trace says.",
        ),
    ] = "10s",
    concurrency: Annotated[
        int, typer.Option("--concurrency", metavar="<n>", min=1, help="Slots per worker.")
    ] = 4,
    start_delay: Annotated[
        str,
        typer.Option(
            "--start-delay", metavar="<duration>", help="ECS task launch to worker serving."
        ),
    ] = "60s",
    initial: Annotated[
        int | None,
        typer.Option(
            "--initial", metavar="<n>", min=0, help="Workers at the start [default: minCapacity]."
        ),
    ] = None,
    alarm_period: Annotated[
        str, typer.Option("--alarm-period", metavar="<duration>", help="alarm-path: period.")
    ] = "60s",
    alarm_evaluation_periods: Annotated[
        int,
        typer.Option(
            "--alarm-evaluation-periods",
            metavar="<n>",
            min=1,
            help="alarm-path: periods looked at.",
        ),
    ] = 1,
    alarm_datapoints: Annotated[
        int,
        typer.Option(
            "--alarm-datapoints",
            metavar="<n>",
            min=1,
            help="alarm-path: breaching datapoints to alarm.",
        ),
    ] = 1,
) -> None:
    """Replay a load trace or pattern through the pool's policy in a seeded simulation."""
    from celery_scaler.analysis.charts import simulation_chart
    from celery_scaler.analysis.documents import simulation_document, simulation_json
    from celery_scaler.analysis.replay import ReportError
    from celery_scaler.analysis.simulate import AlarmPathSettings, SimSettings
    from celery_scaler.analysis.simulate import simulate as run_simulation
    from celery_scaler.analysis.workload import make_workload
    from celery_scaler.core.config import parse_duration

    if (trace is None) == (pattern is None):
        fail("give one of --trace FILE.csv or --pattern steady|burst|diurnal|spiky", EXIT_USAGE)
    settings = load_config(config)
    chosen = one_pool(settings, pool)
    try:
        mean, delay, period, span = (
            parse_duration(value) for value in (task_duration, start_delay, alarm_period, length)
        )
        if mean <= 0 or period <= 0:
            raise ValueError("--task-duration and --alarm-period must be longer than 0s")
        if alarm_datapoints > alarm_evaluation_periods:
            raise ValueError("--alarm-datapoints cannot exceed --alarm-evaluation-periods")
        text = None
        if trace is not None:
            try:
                text = trace.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"cannot read trace {trace}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise ValueError(f"cannot read trace {trace}: not UTF-8 text") from None
        workload = make_workload(text, str(trace), pattern, rate, span, seed)
    except (ValueError, ReportError) as exc:
        fail(str(exc), EXIT_USAGE)
    result = run_simulation(
        chosen,
        workload,
        SimSettings(
            interval=settings.controller.interval,
            concurrency=concurrency,
            start_delay=delay,
            mean_duration=mean,
            initial=initial,
            seed=seed,
        ),
        alarm_path=(
            AlarmPathSettings(
                period=period,
                evaluation_periods=alarm_evaluation_periods,
                datapoints_to_alarm=alarm_datapoints,
            )
            if compare is Compare.ALARM_PATH
            else None
        ),
    )
    emit_document(
        simulation_document(result),
        simulation_json(result),
        lambda: simulation_chart(result),
        fmt,
        out,
        chart,
    )


@app.command("iam-policy")
def iam_policy(
    config: ConfigOption = None,
    tools: Annotated[
        list[Tool] | None,
        typer.Option(
            "--with",
            metavar="<report|alarms|takeover>",
            help="Also what this command needs: report, alarms, takeover; repeatable.",
        ),
    ] = None,
    account_id: Annotated[
        str | None,
        typer.Option(
            "--account-id",
            metavar="<12 digits>",
            help="The AWS account in ARNs; * when not given.",
            show_default=False,
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region",
            metavar="<region>",
            help="The region in ARNs; spec.region, else *, when not given.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the least-privilege IAM policy (JSON) for what the configuration uses."""
    from celery_scaler.compose import aws_adapters
    from celery_scaler.iam import MANAGED_POLICY_CHARACTERS, policy, size, where

    settings = load_config(config)
    try:
        place = where(region or settings.controller.region, account_id)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    document = policy(settings, aws_adapters(settings, tools or ()), place)
    print(json.dumps(document, indent=2))
    if size(document) > MANAGED_POLICY_CHARACTERS:
        stderr.print(
            f"note: {size(document)} characters, more than the {MANAGED_POLICY_CHARACTERS} "
            "of a managed policy: attach it inline (10,240 per role) or split the pools",
            style="yellow",
            highlight=False,
            soft_wrap=True,
        )


AlarmsPoolOption = Annotated[
    str | None,
    typer.Option(
        "--pool", metavar="<name>", help="Only this WorkerPool's; nothing of the others is touched."
    ),
]


def _alarm_plan(
    config: Path | None, pool: str | None
) -> tuple[tuple[Resource, ...], Actual, Plan, tuple[CloudWatchAlarms, AutoScalingFallback]]:
    """(wanted, actual, plan, stores) for `alarms plan|apply`; fails with a clear line."""
    from celery_scaler.alarms.desired import AlarmsError
    from celery_scaler.alarms.sync import plan
    from celery_scaler.compose import build_alarm_stores

    settings = load_config(config)
    try:
        only = [settings.pool(pool)] if pool else None
        stores = build_alarm_stores(settings)
        return (*plan(settings, only, *stores), stores)
    except (ConfigError, AlarmsError) as exc:
        fail(str(exc), EXIT_USAGE)
    except AdapterError as exc:
        fail(str(exc), EXIT_POOL_FAILED)


def _conflicts(planned: Plan) -> None:
    from celery_scaler.alarms.formats import conflict_message

    for resource in planned.conflicts:
        stderr.print(Text.assemble(("error: ", "red"), conflict_message(resource)), soft_wrap=True)
    if planned.conflicts:
        raise typer.Exit(EXIT_POOL_FAILED)


@alarms_app.command("plan")
def alarms_plan(
    config: ConfigOption = None,
    pool: AlarmsPoolOption = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="table or json")] = Output.TABLE,
    detailed_exitcode: Annotated[
        bool,
        typer.Option("--detailed-exitcode", help="Exit 2 when there are changes, 1 on any error."),
    ] = False,
) -> None:
    """What `alarms apply` would create, change and delete."""
    from celery_scaler.alarms.formats import plan_json, plan_view

    try:
        _, _, planned, _ = _alarm_plan(config, pool)
    except typer.Exit as exit:
        # As terraform's: with --detailed-exitcode 2 means changes, so an error is 1.
        usage = detailed_exitcode and exit.exit_code == EXIT_USAGE
        raise typer.Exit(EXIT_POOL_FAILED if usage else exit.exit_code) from None
    if output is Output.JSON:
        print(json.dumps(plan_json(planned), sort_keys=True), flush=True)
    else:
        stdout.print(plan_view(planned), soft_wrap=True)
    _conflicts(planned)
    raise typer.Exit(2 if detailed_exitcode and planned.changes else EXIT_OK)


@alarms_app.command("apply")
def alarms_apply(
    config: ConfigOption = None,
    pool: AlarmsPoolOption = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="table or json")] = Output.TABLE,
) -> None:
    """Create, change and delete the alarms and fallback policies to match the configuration."""
    from celery_scaler.alarms.formats import describe_change, plan_json, plan_view
    from celery_scaler.alarms.sync import apply

    wanted, actual, planned, (alarms, fallback) = _alarm_plan(config, pool)
    _conflicts(planned)
    done: list[Change] = []

    def applied(change: Change) -> None:
        done.append(change)
        if output is Output.TABLE:
            stdout.print(Text(f"applied: {describe_change(change)}"), soft_wrap=True)

    if output is Output.TABLE:
        stdout.print(plan_view(planned), soft_wrap=True)
    error = None
    try:
        apply(planned, wanted, actual, alarms, fallback, applied)
    except AdapterError as exc:
        error = str(exc)
    if output is Output.JSON:
        result = {
            "plan": plan_json(planned),
            "applied": [describe_change(change) for change in done],
            "error": error,
        }
        print(json.dumps(result, sort_keys=True), flush=True)
    elif done:
        stdout.print(f"Applied {len(done)} change(s).")
    if error:
        fail(f"{error} (what was applied stays; run `alarms plan` for the rest)", EXIT_POOL_FAILED)


class ExportFormat(StrEnum):
    TERRAFORM = "terraform"
    JSON = "json"


@alarms_app.command("export")
def alarms_export(
    config: ConfigOption = None,
    pool: AlarmsPoolOption = None,
    fmt: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="terraform or json")
    ] = ExportFormat.TERRAFORM,
) -> None:
    """The same resources as Terraform (HCL) or as JSON API requests; reads no AWS."""
    from celery_scaler.alarms.desired import AlarmsError, desired
    from celery_scaler.alarms.formats import export_json, terraform

    settings = load_config(config)
    try:
        resources = desired(settings, [settings.pool(pool)] if pool else None)
    except (ConfigError, AlarmsError) as exc:
        fail(str(exc), EXIT_USAGE)
    if fmt is ExportFormat.JSON:
        print(json.dumps(export_json(resources), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        sys.stdout.write(terraform(resources))


@app.command()
def takeover(
    config: ConfigOption = None,
    pool: Annotated[
        str | None,
        typer.Option(
            "--pool",
            metavar="<name>",
            help="The WorkerPool whose ECS service to take over; needed when there are several.",
        ),
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Do it; without it, say what would be done.")
    ] = False,
    undo: Annotated[
        bool,
        typer.Option("--undo", help="Restore the dynamic scaling a takeover suspended."),
    ] = False,
) -> None:
    """Suspend another autoscaler's dynamic scaling on a pool's service (a dry run without
    --apply); its policies and alarms are kept."""
    from celery_scaler.alarms import takeover as handover
    from celery_scaler.compose import build_takeover

    settings = load_config(config)
    chosen = one_pool(settings, pool)
    prefix = settings.controller.alarms.name_prefix
    try:
        targets, services = build_takeover(settings)
        target, service = handover.read(chosen, targets, services)
        planned = handover.plan(chosen, prefix, target, service, time.time(), undo=undo)
        if apply:
            handover.apply(planned, targets, services)
    except AdapterError as exc:
        fail(f"{exc} (run takeover again: what was done stays)", EXIT_POOL_FAILED)
    region = settings.controller.region
    for line in handover.describe(planned, applied=apply, region=region):
        stdout.print(Text(line), soft_wrap=True)


@config_app.command()
def validate(config: ConfigOption = None) -> None:
    """Check a configuration file; exit 2 with the document and field at fault."""
    settings = load_config(config)
    pools = ", ".join(pool.name for pool in settings.pools)
    stdout.print(f"configuration is valid: {len(settings.pools)} pool(s): {pools}", highlight=False)


@config_app.command()
def schema() -> None:
    """Print the JSON Schema of a configuration document."""
    from celery_scaler.core.config import json_schema

    print(json.dumps(json_schema(), indent=2))


@config_app.command()
def example() -> None:
    """Print an annotated example configuration."""
    sys.stdout.write(files("celery_scaler").joinpath("example.yaml").read_text(encoding="utf-8"))


@config_app.command("import")
def import_setup(
    terraform: Annotated[
        list[Path],
        typer.Option(
            "--terraform",
            metavar="<file.tf>",
            help="A Terraform file of the setup; repeat for the files of one module.",
            show_default=False,
        ),
    ],
    variables: Annotated[
        list[str] | None,
        typer.Option(
            "--var",
            metavar="<name=value>",
            help="A variable's value (or any reference's: data.x.y.name=value); repeatable.",
        ),
    ] = None,
) -> None:
    """Print WorkerPool documents for an Application Auto Scaling setup in Terraform."""
    from celery_scaler.analysis.terraform_import import (
        TerraformImportError,
        import_terraform,
        parse_vars,
    )

    try:
        import hcl2
        from lark.exceptions import LarkError
    except ModuleNotFoundError:
        fail(
            "config import --terraform reads HCL with python-hcl2: "
            "pip install 'celery-scaler[import]'",
            EXIT_USAGE,
        )
    parsed = []
    for path in terraform:
        try:
            parsed.append(hcl2.loads(path.read_text(encoding="utf-8")))
        except OSError as exc:
            fail(f"cannot read {path}: {exc.strerror}", EXIT_USAGE)
        except (LarkError, UnicodeDecodeError) as exc:
            fail(f"{path}: not HCL that Terraform reads: {str(exc).splitlines()[0]}", EXIT_USAGE)
    try:
        text = import_terraform(
            parsed, parse_vars(variables or ()), ", ".join(str(path) for path in terraform)
        )
    except TerraformImportError as exc:
        fail(str(exc), EXIT_USAGE)
    sys.stdout.write(text)
    from celery_scaler.core.config import parse_config

    try:
        # What `config validate` would say of it: an AWS step table the configuration
        # refuses, say. The documents are printed all the same, to be fixed by hand.
        parse_config(text, "the imported documents", env={})
    except ConfigError as exc:
        fail(f"{exc} (edit the documents above by hand)", EXIT_USAGE)


def main() -> None:
    app()
