"""`instrument(app)`: stamp published messages so the controller can read queue latency."""
# Placeholder; implemented with the broker adapter.
from typing import Any


def instrument(app: Any) -> None:
    raise NotImplementedError
