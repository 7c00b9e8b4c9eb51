"""Loading checkpoints safely.

Pickled checkpoints are read with `torch.load(weights_only=True)` only: a file that needs arbitrary
unpickling is refused, never executed. `.safetensors` is read natively. The usual wrappers
(`{"model": ...}`, `{"state_dict": ...}`, DataParallel `module.` prefixes) are unwrapped.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

from .errors import WeightsError

StateDict = dict[str, torch.Tensor]
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
WRAPPER_KEYS = ("state_dict", "model", "module")
_SHOW = 3  # keys named per category in a mismatch message


def read_state_dict(path: str | Path) -> StateDict:
    """Read a checkpoint file into a flat {name: tensor} dict, or raise WeightsError."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises its own error types
            raise WeightsError(f"{path} is not a readable .safetensors file ({_first_line(err)})") from None
    elif path.suffix in PICKLE_SUFFIXES:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            if "GLOBAL" in str(err):  # the safe unpickler met a class/function it will not import
                raise WeightsError(
                    f"refusing to load {path}: it contains pickled Python objects beyond tensors, "
                    "which could run code; re-save only its state dict (or as .safetensors)"
                ) from None
            raise WeightsError(
                f"{path} is not a readable PyTorch checkpoint, possibly truncated or corrupt "
                f"({_reason(err)})"
            ) from None
        except Exception as err:  # truncated zip, not a pickle at all, ...
            raise WeightsError(
                f"{path} is not a readable PyTorch checkpoint, possibly truncated or corrupt "
                f"({_first_line(err)})"
            ) from None
    else:
        raise WeightsError(
            f"unsupported weights file {path.name}: use .safetensors or one of {', '.join(PICKLE_SUFFIXES)}"
        )
    return unwrap_state_dict(obj, str(path))


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> StateDict:
    """Strip training wrappers and DataParallel prefixes; insist on a flat name -> tensor map."""
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{source} holds no state dict (found {type(obj).__name__})")
    bad = next((k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise WeightsError(
            f"{source} is not a state dict: entry {bad!r} is a {type(obj[bad]).__name__}, not a tensor"
        )
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def check_fit(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise one WeightsError naming counts and the first missing / unexpected / wrong-shape keys."""
    expected = model.state_dict()
    derived = {
        f"{name}.{buf}" if name else buf
        for name, module in model.named_modules()
        for buf in getattr(module, "derived_buffers", ())
    }
    missing = [k for k in expected if k not in state and k not in derived]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} (file {list(state[k].shape)} vs model {list(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if not (missing or unexpected or wrong):
        return
    name = getattr(getattr(model, "edge_config", None), "name", type(model).__name__)
    parts = [f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} wrong-shape keys"]
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            more = f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
            parts.append(f"{label}: {', '.join(keys[:_SHOW])}{more}")
    raise WeightsError(
        f"{source} does not fit {name}: " + "; ".join(parts)
        + " -- check the model name and overrides (e.g. num_classes, img_size)"
    )


def backbone_state(model: nn.Module, state: StateDict) -> tuple[StateDict, list[str]]:
    """A classifier checkpoint for a backbone (`features_only`): the keys of modules a backbone
    does not have (its head, and the final norm of the pyramid models) are dropped and returned, so
    official checkpoints load with strict=True all the same. Other models get `state` unchanged."""
    if not getattr(model, "features_only", False):
        return state, []
    present = {name.split(".")[0] for name, _ in model.named_children()} | {
        name for name, _ in model.named_parameters(recurse=False)}
    dropped = [k for k in state if k.split(".")[0] not in present]
    return {k: v for k, v in state.items() if k not in dropped}, dropped


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a checkpoint into `model` (strict). The model is untouched if the file does not fit."""
    state, _ = backbone_state(model, read_state_dict(path))
    check_fit(model, state, str(path))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise WeightsError(f"{path} does not fit the model: {_first_line(err)}") from None
    return model


def _reason(err: BaseException) -> str:
    """The informative line of torch's multi-paragraph unpickling errors."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return next((ln for ln in lines if ln.startswith(("Unsupported", "Trying"))), _first_line(err))


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
