"""Model zoo: one module per family, each registering its variants with the registry."""

from . import as_mlp, cycle_mlp, mlp_mixer  # noqa: F401  (registration side effects)
from ._registry import (
    RANDOM_INIT_SEED,
    MAX_IMG_SIZE,
    MAX_NUM_CLASSES,
    DataConfig,
    InputSizes,
    ModelConfig,
    ModelSpec,
    build,
    config_from_record,
    create_model,
    get_spec,
    input_sizes,
    list_models,
    resolve_config,
    size_overrides,
)
from ._settings import architecture_keys, check_architecture, option_for, parse_settings

__all__ = [
    "RANDOM_INIT_SEED",
    "MAX_IMG_SIZE",
    "MAX_NUM_CLASSES",
    "DataConfig",
    "InputSizes",
    "ModelConfig",
    "ModelSpec",
    "architecture_keys",
    "build",
    "check_architecture",
    "config_from_record",
    "create_model",
    "get_spec",
    "input_sizes",
    "list_models",
    "option_for",
    "parse_settings",
    "resolve_config",
    "size_overrides",
]
