"""Converters from edge-mlp models to mobile artifacts, one module per target behind `Converter`.

Importing this package registers every target: `get_converter("coreml")`, `list_targets()`.
"""

from . import coreml, executorch, onnx, tflite  # noqa: F401  (registration side effects)
from .base import (
    PRECISIONS,
    ConversionOutput,
    ConversionRequest,
    Converter,
    get_converter,
    list_targets,
    register,
)

__all__ = [
    "PRECISIONS",
    "ConversionOutput",
    "ConversionRequest",
    "Converter",
    "get_converter",
    "list_targets",
    "register",
]
