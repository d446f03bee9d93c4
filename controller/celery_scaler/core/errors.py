"""The errors a user can cause, each with a message for a person.

The CLI turns them into one line and an exit code (2 for `ConfigError`, 1 for
`AdapterError`); they live apart from the modules that raise them so the CLI can
catch them without loading the configuration model.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration a user wrote that cannot be used; the message is for a person."""


class AdapterError(Exception):
    """An external system could not be read or written; the message is for a person."""
