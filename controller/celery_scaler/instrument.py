"""`celery_scaler.instrument(app)`: the instrumentation, as the controller's package names it.

The code lives in its own distribution, `celery-scaler-instrument` (import name
`celery_scaler_instrument`, in `instrument/` of this repository), whose only requirement
is Celery, so that an application can install it without the controller's dependencies.
This module re-exports it for applications that already call `celery_scaler.instrument`.
Neither imports Celery until `instrument` is called.
"""

from __future__ import annotations

from celery_scaler_instrument import PUBLISHED_AT_HEADER, instrument, uninstrument

__all__ = ["PUBLISHED_AT_HEADER", "instrument", "uninstrument"]
