"""celery-scaler: keeps Celery worker fleets on AWS ECS sized to their work."""

from celery_scaler.instrument import instrument

__all__ = ["__version__", "instrument"]
__version__ = "0.1.0"
