"""The transport option names the core keeps are the ones the installed kombu reads.

kombu has no single list: a transport's channel copies the names in its
`from_transport_options`, and other code reads `transport_options.get(name)` (or
`[name]`, or `name in ...`) as it goes; py-amqp takes them as its Connection's keyword
arguments. The oracle below collects all of these from the installed packages, so a
kombu upgrade that adds or drops an option fails here instead of being silently
rejected, or accepted, by `config validate`. Any supported kombu (5.3 on) may be
installed: the names the core expects of it are those it knows, less the ones only a
newer kombu reads (`FIRST_READ_BY`).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import kombu
import pytest
from kombu.transport import SQS, pyamqp, redis

from celery_scaler.core.transport_options import FIRST_READ_BY, KNOWN_OPTIONS

INSTALLED = tuple(int(part) for part in kombu.__version__.split(".")[:2])

OPTION_MAPPINGS = {"transport_options", "transport_opts", "topts"}
"""The names kombu's code gives the options mapping where it reads from it."""


def _is_options(node: ast.expr) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr in OPTION_MAPPINGS
    return isinstance(node, ast.Name) and node.id in OPTION_MAPPINGS


def modules(name: str) -> Iterator[ModuleType]:
    """The module, and each module of it if it is a package (kombu's SQS became one)."""
    module = importlib.import_module(name)
    yield module
    for info in pkgutil.iter_modules(getattr(module, "__path__", []), f"{name}."):
        yield importlib.import_module(info.name)


def read_in(*names: str) -> set[str]:
    """Option names these modules read from a transport options mapping."""
    found: set[str] = set()
    for module in (module for name in names for module in modules(name)):
        source = Path(inspect.getfile(module)).read_text()
        for node in ast.walk(ast.parse(source)):
            key: ast.expr | None = None
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and _is_options(node.func.value)
                and node.args
            ):
                key = node.args[0]
            elif isinstance(node, ast.Subscript) and _is_options(node.value):
                key = node.slice
            elif (
                isinstance(node, ast.Compare)
                and isinstance(node.ops[0], ast.In)
                and _is_options(node.comparators[0])
            ):
                key = node.left
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                found.add(key.value)
    return found


def keyword_arguments(function: Callable[..., object]) -> set[str]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = inspect.signature(function).parameters.values()
    return {p.name for p in parameters if p.kind in kinds} - {"self"}


CONNECTION = read_in("kombu.connection")
VIRTUAL = read_in("kombu.transport.virtual")

ORACLE = {
    "redis": set(redis.Channel.from_transport_options)
    | read_in("kombu.transport.redis")
    | VIRTUAL
    | CONNECTION,
    # kombu's pyamqp transport passes every option to py-amqp's Connection, which
    # swallows names it does not know (**kwargs): only its named arguments do anything.
    "amqp": keyword_arguments(pyamqp.Connection.__init__)
    | read_in("kombu.transport.pyamqp")
    | CONNECTION,
    "sqs": set(SQS.Channel.from_transport_options)
    | read_in("kombu.transport.SQS")
    | VIRTUAL
    | CONNECTION,
}


@pytest.mark.parametrize("kind", sorted(ORACLE))
def test_known_options_are_what_the_installed_kombu_reads(kind: str) -> None:
    known = {name for name in KNOWN_OPTIONS[kind] if FIRST_READ_BY.get(name, (5, 3)) <= INSTALLED}
    assert sorted(ORACLE[kind] - known) == [], "kombu reads options the core does not know"
    assert sorted(known - ORACLE[kind]) == [], "the core knows options kombu no longer reads"


def test_the_oracle_finds_options_in_each_way_kombu_reads_them() -> None:
    # A guard on the oracle itself: each way of reading it parses is really found.
    assert {"max_retries", "connect_retries_timeout"} <= CONNECTION  # `name in options`
    assert "polling_interval" in VIRTUAL  # options.get(name)
    assert {"sep", "priority_steps", "global_keyprefix"} <= ORACLE["redis"]
    assert {"confirm_publish", "read_timeout"} <= ORACLE["amqp"]
    assert {"queue_name_prefix", "region", "predefined_queues"} <= ORACLE["sqs"]
