"""How much CPU the command costs before it does anything: `celery-scaler --help`.

Runs, side by side and alternating, `celery-scaler --help` and a Python that only
imports what any command needs (`import typer, pydantic, yaml`), each in a fresh
interpreter, and compares their CPU (user + system, of the child process, from
getrusage). Run from the repository root:

    python -m benchmarks.startup [--rounds 15]

Goal: `--help` takes at most 2x the CPU of importing typer, pydantic and yaml.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

GOAL_RATIO = 2.0


def child_cpu(command: Sequence[str]) -> float:
    """CPU seconds (user + system) the command took, as a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)

    # The console script beside this interpreter (the virtualenv's), else on PATH.
    beside = Path(sys.executable).with_name("celery-scaler")
    script = str(beside) if beside.exists() else shutil.which("celery-scaler") or "celery-scaler"
    commands = {
        "celery-scaler --help": [script, "--help"],
        "import typer, pydantic, yaml": [sys.executable, "-c", "import typer, pydantic, yaml"],
    }
    for command in commands.values():  # warm the file cache and the bytecode
        child_cpu(command)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, command in commands.items():
            samples[name].append(child_cpu(command))
    help_cpu, imports_cpu = (statistics.median(values) for values in samples.values())
    ratio = help_cpu / imports_cpu
    for name, values in samples.items():
        print(
            f"{name:30} CPU median {statistics.median(values) * 1000:6.1f} ms "
            f"(min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f}, {len(values)} runs)"
        )
    met = ratio <= GOAL_RATIO
    print(f"ratio {ratio:.2f}x; goal <= {GOAL_RATIO:g}x: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
