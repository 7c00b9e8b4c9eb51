"""Model zoo: one module per family, each registering its variants with the registry."""

from . import as_mlp, cycle_mlp, mlp_mixer  # noqa: F401  (registration side effects)
from ._registry import (
    RANDOM_INIT_SEED,
    DataConfig,
    ModelConfig,
    ModelSpec,
    build,
    config_from_record,
    create_model,
    get_spec,
    list_models,
    resolve_config,
    size_overrides,
)

__all__ = [
    "RANDOM_INIT_SEED",
    "DataConfig",
    "ModelConfig",
    "ModelSpec",
    "build",
    "config_from_record",
    "create_model",
    "get_spec",
    "list_models",
    "resolve_config",
    "size_overrides",
]
