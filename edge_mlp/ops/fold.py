"""A norm's per-channel affine folded into the layer that consumes it, for the delegate targets.

In their delegate forms (edge_mlp.ops.export_forms) a LayerNorm / GroupNorm(1, C) ends in two
full-tensor ops, `* gamma` and `+ beta`; in int8 graphs they run in float between a dequantize and
a quantize. Where the norm's only consumer is a 1x1 conv or a linear over the normalized channels
(reached directly or through a per-channel average), W (gamma * x + beta) + b = (W diag(gamma)) x
+ (W beta + b): the consumer absorbs both ops. Exact in real arithmetic; the folded weights are
computed in float64, so outputs differ from the unfolded model by float rounding only.

Each model family declares its pairs next to the modules (`NORM_CONSUMERS` on the module that owns
both, as {norm: consumer} attribute paths), since only the family knows a norm has no other user.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

NORM_CONSUMERS = "NORM_CONSUMERS"  # the class attribute a family module declares its pairs in


def _child(module: nn.Module, path: str) -> nn.Module | None:
    for name in path.split("."):
        module = getattr(module, name, None)  # type: ignore[assignment]
        if not isinstance(module, nn.Module):
            return None
    return module


def _channels_in(consumer: nn.Module) -> int | None:
    """Input channels of a layer that mixes channels only (a 1x1 conv, a linear), else None."""
    if isinstance(consumer, nn.Linear):
        return consumer.in_features
    if (isinstance(consumer, nn.Conv2d) and consumer.kernel_size == (1, 1) and consumer.groups == 1
            and consumer.padding in ((0, 0), "valid")):
        return consumer.in_channels
    return None


def _affine(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(gamma, beta) of a norm over channels, None if it has none left to fold."""
    weight, bias = getattr(norm, "weight", None), getattr(norm, "bias", None)
    if not isinstance(norm, (nn.LayerNorm, nn.GroupNorm)) or weight is None or bias is None:
        return None
    if isinstance(norm, nn.GroupNorm) and norm.num_groups != 1:
        return None
    if isinstance(norm, nn.LayerNorm) and len(norm.normalized_shape) != 1:
        return None
    return weight.detach().double(), bias.detach().double()


def _fold_pair(norm: nn.Module, consumer: nn.Module) -> bool:
    affine, channels = _affine(norm), _channels_in(consumer)
    if affine is None or channels is None or affine[0].numel() != channels:
        return False
    gamma, beta = affine
    weight = consumer.weight.detach().double()
    matrix = weight.reshape(weight.shape[0], channels)
    rows = weight.shape[0]
    bias = consumer.bias.detach().double() if consumer.bias is not None else torch.zeros(rows, dtype=torch.float64)
    dtype = consumer.weight.dtype
    consumer.weight = nn.Parameter((matrix * gamma).reshape(weight.shape).to(dtype), requires_grad=False)
    consumer.bias = nn.Parameter((bias + matrix @ beta).to(dtype), requires_grad=False)
    norm.weight = None
    norm.bias = None
    return True


def fold_norm_affines(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """A copy of `model` with every declared norm's affine folded into its consumer, and the
    folded norms' names. The model itself is left as it is (eager PyTorch, other targets)."""
    folded_model = copy.deepcopy(model)
    folded: list[str] = []
    for owner_name, owner in folded_model.named_modules():
        for norm_path, consumer_path in getattr(type(owner), NORM_CONSUMERS, {}).items():
            norm, consumer = _child(owner, norm_path), _child(owner, consumer_path)
            if norm is not None and consumer is not None and _fold_pair(norm, consumer):
                folded.append(f"{owner_name}.{norm_path}" if owner_name else norm_path)
    return folded_model, folded
