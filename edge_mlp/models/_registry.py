"""The model registry: every variant's config lives here, once, and everything reads it from here.

A family module calls `register_family` with its builder class and variant configs. `create_model`
merges builder defaults, the variant's config and caller overrides into one resolved `ModelConfig`
and attaches it to the model (`model.edge_config`), so converters and manifests record exactly
what was built.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn

from ..errors import ConfigError, UnknownModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DataConfig:
    """How images are prepared for a model (resize to img_size / crop_pct, then crop, normalize)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float
    interpolation: str


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    builder: Callable[..., nn.Module]
    config: Mapping[str, Any]
    data: DataConfig
    description: str
    official: bool
    source: str
    overrides: tuple[str, ...]
    has_shift: bool  # a spatial shift whose lowering the target picks (edge_mlp.options.ExportForms)


@dataclass(frozen=True)
class ModelConfig:
    """A resolved model: its registry name and the full constructor arguments it was built with."""

    name: str
    family: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    data: DataConfig | None = None

    @property
    def input_size(self) -> tuple[int, int, int]:
        """(C, H, W) of one input image."""
        size = self.kwargs.get("img_size", 224)
        h, w = size if isinstance(size, (tuple, list)) else (size, size)
        return (int(self.kwargs.get("in_chans", 3)), int(h), int(w))

    @property
    def num_classes(self) -> int:
        return int(self.kwargs.get("num_classes", 1000))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in self.kwargs.items()},
            "data": asdict(self.data) if self.data else None,
            "input_size": list(self.input_size),
        }


_REGISTRY: dict[str, ModelSpec] = {}


def register_family(
    *,
    family: str,
    builder: Callable[..., nn.Module],
    overrides: tuple[str, ...],
    source: str,
    variants: Mapping[str, tuple[Mapping[str, Any], DataConfig, str]],
    official: tuple[str, ...],
    has_shift: bool = False,
) -> None:
    params = inspect.signature(builder).parameters
    unknown = [o for o in overrides if o not in params]
    if unknown:
        raise TypeError(f"{builder.__name__} has no parameters {unknown}")
    for name, (config, data, description) in variants.items():
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(
            name=name, family=family, builder=builder, config=dict(config), data=data,
            description=description, official=name in official, source=source, overrides=overrides,
            has_shift=has_shift,
        )


def list_models(family: str | None = None) -> list[str]:
    """Registered model names (optionally of one family), in registration order."""
    return [n for n, s in _REGISTRY.items() if family is None or s.family == family]


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}{hint} (run 'edge-mlp list' to see all models)"
        ) from None


def resolve_config(name: str, **overrides: Any) -> ModelConfig:
    """Builder defaults < variant config < overrides, validated against the accepted names."""
    spec = get_spec(name)
    bad = sorted(set(overrides) - set(spec.overrides))
    if bad:
        raise ConfigError(
            f"{name} does not accept override(s) {', '.join(bad)}; accepted: {', '.join(spec.overrides)}"
        )
    defaults = {
        k: p.default
        for k, p in inspect.signature(spec.builder).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    kwargs = {**defaults, **spec.config, **overrides}
    return ModelConfig(name=name, family=spec.family, kwargs=kwargs, data=spec.data)


# Recorded by edge-mlp 0.1 manifests, now an export form (manifest.shift_lowering says which).
_RETIRED_FIELDS = ("shift_lowering",)


def size_overrides(img_size: int | None = None, num_classes: int | None = None) -> dict[str, Any]:
    """The overrides behind the CLI's --img-size / --num-classes (only those given)."""
    given = {"img_size": img_size, "num_classes": num_classes}
    return {k: v for k, v in given.items() if v is not None}


def config_from_record(name: str, kwargs: Mapping[str, Any]) -> ModelConfig:
    """Rebuild a resolved config from its recorded form (e.g. a manifest's model.config)."""
    spec = get_spec(name)
    kwargs = {k: v for k, v in kwargs.items() if k not in _RETIRED_FIELDS}
    params = inspect.signature(spec.builder).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ConfigError(f"recorded config of {name} has unknown fields {', '.join(unknown)}")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    return ModelConfig(name=name, family=spec.family, kwargs=fixed, data=spec.data)


# Random-init models are built with this seed wherever they must be reproduced: a conversion
# without weights and the PyTorch reference that parity rebuilds for it.
RANDOM_INIT_SEED = 0


def build(config: ModelConfig, seed: int | None = None) -> nn.Module:
    """Build a model from a resolved config (e.g. one read back from a manifest); with `seed`,
    its random init is reproducible."""
    spec = get_spec(config.name)
    if seed is not None:
        torch.manual_seed(seed)
    try:
        model = spec.builder(**config.kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid config for {config.name}: {err}") from None
    model.edge_config = config  # type: ignore[assignment]
    return model


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model; overrides use the official constructor's keyword names."""
    return build(resolve_config(name, **overrides))
