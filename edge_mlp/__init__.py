"""edge-mlp: vision MLPs (AS-MLP, MLP-Mixer, CycleMLP) made deployable on phones.

The package imports lazily: `import edge_mlp` (and `edge-mlp --help`) costs no torch import;
`edge_mlp.create_model` and friends load the model zoo on first use.
"""

from typing import Any

from . import quiet
from .errors import EdgeMlpError

__version__ = "0.1.0"

quiet.install()

_LAZY = {"create_model": "models", "list_models": "models", "load_weights": "weights"}

__all__ = ["EdgeMlpError", "__version__", "create_model", "list_models", "load_weights"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
