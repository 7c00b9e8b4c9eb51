"""edge-mlp: vision MLPs (AS-MLP, MLP-Mixer, CycleMLP) made deployable on phones."""

from .errors import EdgeMlpError
from .models import create_model, list_models
from .weights import load_weights

__version__ = "0.1.0"

__all__ = ["EdgeMlpError", "__version__", "create_model", "list_models", "load_weights"]
