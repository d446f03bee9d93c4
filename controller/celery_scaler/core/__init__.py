"""The pure core: configuration model, metrics, step-scaling policy and decisions.

Nothing here does I/O or reads the clock: time comes in as an argument, and the modules
import only the standard library, pydantic, PyYAML and each other (checked by
tests/test_architecture.py). Everything above builds on these types.
"""
