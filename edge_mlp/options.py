"""Small typed values the pipeline passes around, and the export-time op forms a target chooses.

Torch-free on purpose: the CLI's parser, the target registry and `--help` read these without
importing torch.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from enum import StrEnum
from typing import Iterator

from .errors import EdgeMlpError


class Precision(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"  # static int8 weights and activations: needs calibration images
    W8 = "w8"  # weight-only int8
    # Core ML weight compression below 8 bits (iOS 18 opset), fp16 activations: int4 per-block
    # linear quantization, and 4- / 6-bit k-means palettization with one LUT per channel group.
    W4 = "w4"
    PAL4 = "pal4"
    PAL6 = "pal6"

    @property
    def calibrated(self) -> bool:
        return self is Precision.INT8

    @property
    def low_bit(self) -> bool:
        """Weights below 8 bits: enough error that `--max-drop` may need to keep blocks at 8 bits."""
        return self in (Precision.W4, Precision.PAL4, Precision.PAL6)

    @property
    def budgeted(self) -> bool:
        """Precisions `convert --max-drop` applies to (an accuracy budget over sensitive blocks)."""
        return self.calibrated or self.low_bit

    @classmethod
    def parse(cls, value: str | Precision) -> Precision:
        try:
            return cls(value)
        except ValueError:
            raise EdgeMlpError(f"unknown precision {value!r}; choose one of {', '.join(cls)}") from None


class ShiftLowering(StrEnum):
    """How the vision-MLP shifts are spelled in the exported graph (edge_mlp.ops.shift)."""

    SLICE = "slice"  # pad + slice + concat
    ROLL = "roll"  # pad + roll + crop
    CONV = "conv"  # one depthwise conv with a fixed one-hot kernel per channel
    # Benchmark-only: the shift becomes a no-op, so `edge-mlp bench` can measure what it costs.
    # It changes the model's outputs; conversions refuse it unless asked for by the benchmark.
    IDENTITY = "identity"

    @classmethod
    def exact(cls) -> tuple[ShiftLowering, ...]:
        """The lowerings that are bit-exact to the official shift."""
        return tuple(v for v in cls if v is not cls.IDENTITY)


AUTO = "auto"  # a requested lowering: the target's preferred one
NO_SHIFT = "none"  # the recorded lowering of a family without a shift


def parse_lowering(value: str | ShiftLowering | None, allow_ablation: bool = False) -> ShiftLowering | None:
    """A requested lowering: None means `auto` (the target picks)."""
    if value is None or value == AUTO:
        return None
    choices = [AUTO, *ShiftLowering.exact()]
    try:
        lowering = ShiftLowering(value)
    except ValueError:
        lowering = None
    if lowering is None or (lowering is ShiftLowering.IDENTITY and not allow_ablation):
        raise EdgeMlpError(f"unknown shift lowering {value!r}; choose one of {', '.join(choices)}")
    return lowering


class NormForm(StrEnum):
    """How norms, means and space-to-depth are spelled while a target exports (edge_mlp.ops.export_forms)."""

    STOCK = "stock"  # PyTorch's own kernels: what eager runs, bit-identical to the official models
    # 4-D means over the two innermost axes, reshapes and permutes: what the XNNPACK delegate of
    # ExecuTorch 1.5 runs whole (no layer_norm / group_norm kernel, 4-D means only over H, W).
    XNNPACK = "xnnpack"
    # Only 4-D elementwise ops and means, no reshapes, and space-to-depth as a one-hot strided conv:
    # litert-torch's layout pass can then run the whole graph channels-last (no TRANSPOSE).
    CHANNELS_LAST = "channels_last"


@dataclass(frozen=True)
class ExportForms:
    """The form each op takes while a model runs or exports. The target picks it
    (`Converter.export_forms`); the models read it (`current_forms()`), so no choice is threaded
    through constructors. Every form is exact in eager PyTorch up to float rounding."""

    shift: ShiftLowering = ShiftLowering.SLICE
    # Norms, means and space-to-depth in the primitives the target's delegate runs whole; only
    # while torch.export traces (edge_mlp.ops.export_forms).
    norms: NormForm = NormForm.STOCK


_FORMS: contextvars.ContextVar[ExportForms] = contextvars.ContextVar("edge_mlp_export_forms", default=ExportForms())


@contextlib.contextmanager
def using_forms(forms: ExportForms) -> Iterator[ExportForms]:
    token = _FORMS.set(forms)
    try:
        yield forms
    finally:
        _FORMS.reset(token)


def current_forms() -> ExportForms:
    return _FORMS.get()
