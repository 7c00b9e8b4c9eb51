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


# Beyond these the work is no longer a phone's: a 2048x2048 AS-MLP-T needs ~40 GB to export, and
# an ImageNet-21k head has 21,843 classes.
MAX_IMG_SIZE = 2048
MAX_NUM_CLASSES = 100_000


@dataclass(frozen=True)
class InputSizes:
    """The square input sizes a resolved model takes: multiples of `step` from `minimum` up to
    MAX_IMG_SIZE. A family derives them from its strides and kernels (`register_family`)."""

    step: int
    minimum: int
    why: str  # the strides / kernels behind the rule, for the error message and `info`
    fixed: bool = False  # weights tied to the size (Mixer's token MLP): one artifact cannot take several

    def accepts(self, size: int) -> bool:
        return self.minimum <= size <= MAX_IMG_SIZE and size % self.step == 0

    def describe(self) -> str:
        sizes = "any size" if self.step == 1 else f"multiples of {self.step}"
        return f"{sizes} from {self.minimum} to {MAX_IMG_SIZE} ({self.why})"

    def nearest(self, size: int) -> list[int]:
        below = max(self.minimum, min(MAX_IMG_SIZE, size) // self.step * self.step)
        above = below if below >= size else below + self.step
        return sorted({s for s in (below, above) if self.accepts(s)})


@dataclass(frozen=True)
class FeatureInfo:
    """One scale a backbone (`features_only=True`) can return, as timm's `feature_info` lists it."""

    index: int  # the out_indices value that selects it
    channels: int
    stride: int  # input pixels per feature-map pixel
    module: str  # the module whose output it is

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ImageSize = tuple[int, int]  # (height, width)


def parse_image_size(text: str) -> ImageSize:
    """'224' -> (224, 224); '288x384' -> (288, 384) (height x width)."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise ValueError(f"{text!r} is not an image size: give N or HxW (e.g. 224 or 288x384)")
    values = [int(p) for p in parts]
    return (values[0], values[-1])


def format_image_size(size: ImageSize | int) -> str:
    h, w = (size, size) if isinstance(size, int) else size
    return str(h) if h == w else f"{h}x{w}"


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
    input_sizes: Callable[[Mapping[str, Any]], InputSizes]  # constructor kwargs -> accepted sizes
    feature_info: Callable[[Mapping[str, Any]], list[FeatureInfo]]  # constructor kwargs -> every scale


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

    @property
    def features_only(self) -> bool:
        return bool(self.kwargs.get("features_only", False))

    def features(self) -> list[FeatureInfo]:
        """The scales a backbone returns, in output order (empty for a classifier)."""
        if not self.features_only:
            return []
        every = get_spec(self.name).feature_info(self.kwargs)
        return [every[i] for i in resolved_out_indices(self.kwargs, len(every))]

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
    input_sizes: Callable[[Mapping[str, Any]], InputSizes],
    feature_info: Callable[[Mapping[str, Any]], list[FeatureInfo]],
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
            has_shift=has_shift, input_sizes=input_sizes, feature_info=feature_info,
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
    _check_sizes(spec, kwargs, overrides)
    return ModelConfig(name=name, family=spec.family, kwargs=kwargs, data=spec.data)


def input_sizes(name: str, **overrides: Any) -> InputSizes:
    """The input sizes `name` (with `overrides`, e.g. other depths) takes."""
    spec = get_spec(name)
    return spec.input_sizes(resolve_config(name, **{k: v for k, v in overrides.items() if k != "img_size"}).kwargs)


def _check_sizes(spec: ModelSpec, kwargs: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
    """Refuse, before anything is built, the sizes, counts and feature stages that would fail deep
    inside a conversion (or allocate without bound)."""
    classes = overrides.get("num_classes")
    if classes is not None and (not isinstance(classes, int) or not 1 <= classes <= MAX_NUM_CLASSES):
        raise ConfigError(f"number of classes must be from 1 to {MAX_NUM_CLASSES:,}, got {classes}")
    if "out_indices" in overrides or "features_only" in overrides:
        check_out_indices(spec, kwargs)
    size = overrides.get("img_size")
    if size is not None:
        check_image_size(spec.name, spec.input_sizes(kwargs), size)


def check_image_size(name: str, rule: InputSizes, size: Any) -> None:
    """One line naming the rule and the nearest sizes, per side, for a size `name` cannot take."""
    sides = list(size) if isinstance(size, (tuple, list)) else [size]
    if len(sides) not in (1, 2) or not all(isinstance(s, int) and not isinstance(s, bool) for s in sides):
        raise ConfigError(f"{name} does not take image size {size!r}: give one size N or HxW")
    if all(rule.accepts(s) for s in sides):
        return
    shown = format_image_size(tuple(sides) if len(sides) == 2 else sides[0])  # type: ignore[arg-type]
    near = []
    for label, s in zip(("height ", "width ") if len(sides) == 2 and sides[0] != sides[1] else ("",), sides):
        if not rule.accepts(s):
            options = rule.nearest(s)
            near.append(f"{label}{' or '.join(map(str, options))}" if options else "")
    hint = f"; nearest: {', '.join(n for n in near if n)}" if any(near) else ""
    raise ConfigError(f"{name} does not take image size {shown}: it takes {rule.describe()}{hint}")


def resolved_out_indices(kwargs: Mapping[str, Any], stages: int) -> list[int]:
    """The stages a backbone returns: `out_indices`, or all of them when it is None."""
    chosen = kwargs.get("out_indices")
    return list(range(stages)) if chosen is None else [int(i) for i in chosen]


def check_out_indices(spec: ModelSpec, kwargs: Mapping[str, Any]) -> None:
    every = spec.feature_info(kwargs)
    chosen = kwargs.get("out_indices")
    if not kwargs.get("features_only"):
        if chosen is not None:
            raise ConfigError("out_indices choose a backbone's outputs: add --features-only (features_only=True)")
        return
    if chosen is None:
        return
    values = list(chosen) if isinstance(chosen, (tuple, list)) else [chosen]
    bad = [v for v in values if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < len(every)]
    if bad or not values or len(set(values)) != len(values) or values != sorted(values):
        if len(every) == 1:
            only = every[0]
            stages = f"it has one feature scale, index 0 (its token map: stride {only.stride}, {only.channels} ch)"
        else:
            stages = "its stages are " + ", ".join(f"{f.index} (stride {f.stride}, {f.channels} ch)" for f in every)
        raise ConfigError(f"{spec.name} cannot return feature stages {','.join(map(str, values)) or '(none)'}: "
                          f"{stages}; give distinct indices in increasing order")


# Recorded by edge-mlp 0.1 manifests, now an export form (manifest.shift_lowering says which).
_RETIRED_FIELDS = ("shift_lowering",)


def size_overrides(img_size: int | ImageSize | None = None, num_classes: int | None = None) -> dict[str, Any]:
    """The overrides behind the CLI's --img-size / --num-classes (only those given); a square
    (H, W) size is recorded as one int, as the official configs do."""
    if isinstance(img_size, (tuple, list)):
        img_size = img_size[0] if img_size[0] == img_size[1] else (int(img_size[0]), int(img_size[1]))
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
