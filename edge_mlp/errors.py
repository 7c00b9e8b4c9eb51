"""User-facing errors.

Everything raised as an `EdgeMlpError` is caused by the caller's input (a name, a file, an option);
the CLI prints its message as one line and exits with status 2. Anything else is a bug.
"""

from __future__ import annotations


class EdgeMlpError(Exception):
    """Bad input: the message says what was wrong and what to do."""

    exit_code = 2


class UnknownModelError(EdgeMlpError):
    """A model name that is not in the registry."""


class ConfigError(EdgeMlpError):
    """An override or option a model does not accept."""


class WeightsError(EdgeMlpError):
    """A weights file that cannot be read, is not a checkpoint, or does not fit the model."""


def indefinite(noun: str) -> str:
    """'an onnx', 'a tflite': for messages that name a target."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
