"""celery-scaler: keeps Celery worker fleets on AWS ECS sized to their work."""

from __future__ import annotations

from celery_scaler.instrument import instrument

__all__ = ["__version__", "instrument"]

_DISTRIBUTION = "celery-scaler"


def __getattr__(name: str) -> str:
    # `__version__` comes from the installed distribution's metadata, so pyproject.toml's
    # version is the only one. Looked up on first use: importlib.metadata costs the
    # applications that import this package for `instrument` a few milliseconds.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(_DISTRIBUTION)
        except PackageNotFoundError:  # a checkout on sys.path, never installed
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
