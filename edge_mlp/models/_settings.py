"""A variant reshaped by the user (`--set KEY=VALUE`): its values read and checked up front.

A depth, width or patch the family cannot take would otherwise fail deep inside a conversion,
minutes in, with a framework's traceback; here it fails in one line before any work.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch

from ..errors import ConfigError
from ._registry import ModelConfig, check_image_size, get_spec, resolve_config

# What a user may reshape (`--set KEY=VALUE`): a variant's depth, width, ratios, patch or shift size.
# The rest have their own options, change nothing at inference (drop rates) or would break the
# preprocessing the apps and calibration share (in_chans).
_NOT_ARCHITECTURE = ("img_size", "num_classes", "features_only", "out_indices", "in_chans", "drop_rate",
                     "drop_path_rate")
MAX_SETTING = 4096  # any count or width beyond it is no longer a phone's model
MAX_PARAMS = 500_000_000  # 5.7x the largest official variant (AS-MLP-B, 88 M)
MAX_WEIGHT_TENSORS = 10_000  # 12x the most of any variant (CycleMLP-B4: 791); builds in about 2 s on meta


def architecture_keys(name: str) -> tuple[str, ...]:
    """The overrides of `name` that reshape its architecture (what `--set` takes)."""
    return tuple(k for k in get_spec(name).overrides if k not in _NOT_ARCHITECTURE)


def check_architecture(config: ModelConfig, changed: Mapping[str, Any]) -> None:
    """Refuse, in one line and within seconds, a reshaped config the family cannot build or run:
    each changed value must be of its variant value's kind and within bounds, then the model is built
    and run once on the meta device (no memory, no compute), so a depth, width or patch that does
    not fit fails here instead of deep inside a conversion."""
    if not changed:
        return
    variant = resolve_config(config.name).kwargs
    for key, value in changed.items():
        _check_setting(config.name, key, value, variant.get(key))
    spec = get_spec(config.name)
    shown = ", ".join(f"{k}={_format_setting(v)}" for k, v in changed.items())
    _, h, w = config.input_size
    try:  # the size the config runs at, against the rule the changed patch / stages give
        check_image_size(config.name, spec.input_sizes(config.kwargs), h if h == w else (h, w))
    except ConfigError as err:
        raise ConfigError(f"with {shown}, {err}") from None
    too_large = ConfigError(f"{config.name} with {shown} has over {MAX_PARAMS / 1e6:,.0f} M parameters or "
                            f"{MAX_WEIGHT_TENSORS:,} weight tensors, more than a phone's model")
    counted = [0, 0]  # parameters, tensors

    def count(module: torch.nn.Module, name: str, param: torch.nn.Parameter | None) -> None:
        # stops the build as soon as it is too large (depths=4096,4096,4096,4096 took 50 s to build)
        counted[0] += param.numel() if param is not None else 0
        counted[1] += 1
        if counted[0] > MAX_PARAMS or counted[1] > MAX_WEIGHT_TENSORS:
            raise too_large

    hook = torch.nn.modules.module.register_module_parameter_registration_hook(count)
    try:
        with torch.device("meta"), torch.no_grad():
            model = spec.builder(**config.kwargs).eval()
            hook.remove()
            weights = list(model.parameters())  # however they were made
            if sum(p.numel() for p in weights) > MAX_PARAMS or len(weights) > MAX_WEIGHT_TENSORS:
                raise too_large
            model(torch.empty(1, *config.input_size))
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of the builder or its forward is this config's
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"{config.name} cannot be built with {shown} for {h}x{w} inputs: {reason}") from None
    finally:
        hook.remove()


# Overrides with an option of their own, for the error that points there.
_OWN_OPTIONS = {"img_size": "--img-size", "num_classes": "--num-classes", "features_only": "--features-only",
                "out_indices": "--out-indices"}


def option_for(key: str) -> str:
    """The command-line option that sets override `key`: its own option, else `--set key`."""
    return _OWN_OPTIONS.get(key, f"--set {key}")


def parse_settings(name: str, assignments: Sequence[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` texts as typed overrides, each read as its variant value's kind (a list
    for a per-stage setting, so depths=2 is one stage of 2 blocks)."""
    settable = architecture_keys(name)
    variant = resolve_config(name).kwargs
    settings: dict[str, Any] = {}
    for text in assignments:
        key, sep, raw = (part.strip() for part in text.partition("="))
        key = key.replace("-", "_")
        if not sep or not key or not raw:
            raise ConfigError(f"--set takes KEY=VALUE, such as num_blocks=4 or depths=2,2,6,2; got {text!r}")
        if key not in settable:
            own = f"; use {_OWN_OPTIONS[key]}" if key in _OWN_OPTIONS else ""
            raise ConfigError(f"{name} has no setting {key!r} for --set{own} (it takes {', '.join(settable)})")
        if key in settings:
            raise ConfigError(f"--set {key} is given twice")
        like = variant.get(key)
        if isinstance(like, (tuple, list)) and like:
            settings[key] = tuple(_read_setting(name, key, part.strip(), like[0], like) for part in raw.split(","))
        else:
            settings[key] = _read_setting(name, key, raw, like, like)
    return settings


def _read_setting(name: str, key: str, text: str, kind: Any, like: Any) -> Any:
    try:
        if isinstance(kind, bool):
            value = {"true": True, "false": False}[text.lower()]
        else:
            value = int(text) if isinstance(kind, int) else float(text)
    except (KeyError, ValueError):
        raise ConfigError(f"{name} takes {key} as {_setting_kind(like)} (its own: {_format_setting(like)}), "
                          f"got {text!r}") from None
    return value


def _check_setting(name: str, key: str, value: Any, like: Any) -> None:
    def fits(v: Any, w: Any) -> bool:
        if isinstance(w, bool):
            return isinstance(v, bool)
        if isinstance(w, int):
            return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SETTING
        if isinstance(w, float):
            return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    and 0 <= v <= MAX_SETTING)
        return w is None
    if isinstance(like, (tuple, list)) and like:
        ok = isinstance(value, (tuple, list)) and 1 <= len(value) <= 16 and all(fits(v, like[0]) for v in value)
    else:
        ok = fits(value, like)
    if not ok:
        kind = _setting_kind(like)
        raise ConfigError(f"{name} takes {key} as {kind} (its own: {_format_setting(like)}), "
                          f"got {_format_setting(value)}")


def _setting_kind(like: Any) -> str:
    if isinstance(like, (tuple, list)) and like:
        return f"a comma-separated list of 1 to 16 {_setting_kinds(like[0])[1]}"
    return _setting_kinds(like)[0]


def _setting_kinds(like: Any) -> tuple[str, str]:
    """(one, several) of the values a setting like `like` takes."""
    if isinstance(like, bool):
        return "true or false", "true / false values"
    if isinstance(like, int):
        return f"a whole number from 1 to {MAX_SETTING}", f"whole numbers from 1 to {MAX_SETTING}"
    if isinstance(like, float):
        return f"a number from 0 to {MAX_SETTING}", f"numbers from 0 to {MAX_SETTING}"
    return "a value", "values"


def _format_setting(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(_format_setting(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if isinstance(value, (int, float)) else repr(value)
