"""Export targets, one module each behind `Converter`; installed as `edge_mlp.converters`.

Importing this package registers every target (`get_converter("coreml")`, `list_targets()`) without
importing torch or any runtime. A new target is one module with one `@register` class, and its
name on the import line below.
"""

from . import coreml, executorch, onnx, tflite  # noqa: F401  (registration: one name per target)
from .base import (
    ConversionOutput,
    ConversionRequest,
    Converter,
    HostModel,
    all_converters,
    get_converter,
    host_timed_targets,
    list_targets,
    register,
)

__all__ = [
    "ConversionOutput",
    "ConversionRequest",
    "Converter",
    "HostModel",
    "all_converters",
    "get_converter",
    "host_timed_targets",
    "list_targets",
    "register",
]
