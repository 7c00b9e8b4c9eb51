"""PT2E static quantization shared by the targets that use it (export, prepare, calibrate, convert),
their graph rewrites, and the XNNPACK recipe. Also used by edge_mlp.sensitivity to simulate a
target's int8. Imports torch: load it only where a conversion or simulation runs."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

from edge_mlp.manifest import QuantizationInfo

if TYPE_CHECKING:  # types only: base imports this module's recipe at run time
    from .base import ConversionRequest, Converter, StageTimer

XNNPACK_NOTE = "XNNPACKQuantizer PT2E (per-channel symmetric weights, per-tensor activations)"


def xnnpack_recipe(float_modules: Sequence[str] = ()) -> tuple[Any, Callable, str]:
    """XNNPACKQuantizer (per-channel symmetric weights, per-tensor activations) with our rewrites."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    rewrite = chain(mark_float(float_modules) if float_modules else None, group_norm_ends_int8(quantizer),
                    float_norms, slices_share_qparams(quantizer), shift_convs_share_qparams(quantizer))
    return quantizer, rewrite, XNNPACK_NOTE


def quantize_pt2e(
    model: nn.Module,
    example: torch.Tensor,
    quantizer: Any,
    calibration: Sequence[torch.Tensor],
    stage: StageTimer,
    fold_quantize: bool = True,
    rewrite: Callable[[torch.fx.GraphModule], None] | None = None,
) -> torch.fx.GraphModule:
    if not calibration:
        raise ValueError("int8 quantization needs calibration data")
    with stage("export"):
        graph = torch.export.export(model, (example,)).module()
        if rewrite is not None:  # target-specific graph fix-ups before annotation
            rewrite(graph)
    with stage("quantize"):
        prepared = prepare_pt2e(graph, quantizer)
    from edge_mlp.bench.measure import torch_threads

    # One thread: the observers' statistics follow the float summation order, which follows the
    # thread count. Calibrated on two threads (`convert --jobs 1` here) and on one (each of two
    # workers), as_mlp_mobile's int8 `.tflite` differed; on one always, an artifact is the same bits
    # however many workers or cores convert it.
    with stage("calibrate"), torch.no_grad(), torch_threads(1):
        for batch in calibration:
            prepared(batch)
    with stage("quantize"), histogram_qparams_once():
        quantized = convert_pt2e(prepared, fold_quantize=fold_quantize)
    # Exported from an eval() model, the graph already computes inference, but its `training` flag
    # stays True (exported GraphModules refuse .eval()) and litert-torch warns "converted in
    # training mode": say what it is.
    for module in quantized.modules():
        module.training = False
    return quantized


_SEARCHABLE = (torch.float32, torch.float64)


def histogram_range_search(observer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """HistogramObserver._non_linear_param_search (torchao 0.18), step for step and with the same
    result, but comparing the cumulative histogram as Python floats: the original indexes a 0-d
    tensor for each comparison, tens of thousands per search as its bounds move by 1e-5 of the
    total. A float32 tensor compared with a Python float compares in float32, so each bound is
    rounded to float32 here as torch does; the quantization errors are computed by the observer's
    own method."""
    histogram = observer.histogram
    assert histogram.size()[0] == observer.bins, "bins mismatch"
    if histogram.dtype not in _SEARCHABLE:
        raise ValueError(f"a {histogram.dtype} histogram: only float32 and float64 are searched here")
    as_histogram_dtype: Callable[[float], float] = (
        (lambda v: float(np.float32(v))) if histogram.dtype == torch.float32 else float)
    bin_width = (observer.max_val - observer.min_val) / observer.bins
    total = torch.sum(histogram).item()
    c_sum = torch.cumsum(histogram, dim=0).tolist()  # float32 values, exactly, as Python floats
    stepsize = 1e-5
    alpha, beta = 0.0, 1.0
    start_bin, end_bin = 0, observer.bins - 1
    norm_min = float("inf")
    while alpha < beta:
        next_alpha = alpha + stepsize
        next_beta = beta - stepsize
        low, high = as_histogram_dtype(next_alpha * total), as_histogram_dtype(next_beta * total)
        left, right = start_bin, end_bin
        while left < end_bin and c_sum[left] < low:
            left += 1
        while right > start_bin and c_sum[right] > high:
            right -= 1
        next_start_bin, next_end_bin = start_bin, end_bin
        if (left - start_bin) > (end_bin - right):
            next_start_bin = left
            alpha = next_alpha
        else:
            next_end_bin = right
            beta = next_beta
        if next_start_bin == start_bin and next_end_bin == end_bin:
            continue
        norm = observer._compute_quantization_error(next_start_bin, next_end_bin)
        if norm > norm_min:
            break
        norm_min = norm
        start_bin, end_bin = next_start_bin, next_end_bin
    return observer.min_val + bin_width * start_bin, observer.min_val + bin_width * (end_bin + 1)


@contextmanager
def histogram_qparams_once() -> Iterator[list[int]]:
    """Within: a HistogramObserver computes its params once per state, with its range search in
    Python floats (histogram_range_search). `convert_pt2e` asks each observer again for every node
    it quantizes (as_mlp_mobile on LiteRT's recipe: 655 searches over 2048-bin histograms, 413 of
    them distinct); the search is a pure function of the observer's histogram and range, so the
    answer is reused while they are unchanged (their tensors' version counters). Yields
    [computed, reused] counts."""
    from torchao.quantization.pt2e.observer import HistogramObserver

    search = HistogramObserver.calculate_qparams
    range_search = HistogramObserver._non_linear_param_search
    counts = [0, 0]
    answers: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    def calculate_qparams(self: HistogramObserver) -> tuple[torch.Tensor, torch.Tensor]:
        key = (id(self), *(t._version for t in (self.histogram, self.min_val, self.max_val)))
        if key not in answers:
            counts[0] += 1
            answers[key] = search(self)
        else:
            counts[1] += 1
        scale, zero_point = answers[key]
        return scale.clone(), zero_point.clone()

    HistogramObserver.calculate_qparams = calculate_qparams
    HistogramObserver._non_linear_param_search = (  # type: ignore[method-assign]
        lambda self: histogram_range_search(self) if self.histogram.dtype in _SEARCHABLE else range_search(self))
    try:
        yield counts
    finally:
        HistogramObserver.calculate_qparams = search
        HistogramObserver._non_linear_param_search = range_search


def quantize_request(converter: Converter, request: ConversionRequest,
                     fold_quantize: bool = True) -> tuple[torch.fx.GraphModule, Any, QuantizationInfo]:
    """The request's model through the converter's own PT2E recipe: (quantized graph, quantizer,
    the manifest's description of the target's int8)."""
    quantizer, rewrite, _ = converter.pt2e_recipe(request.float_modules)
    graph = quantize_pt2e(request.model, request.example, quantizer, request.calibration, request.stage,
                          fold_quantize=fold_quantize, rewrite=rewrite)
    return graph, quantizer, QuantizationInfo(scheme=converter.int8_scheme, tool=converter.int8_tool)


def in_modules(node: torch.fx.Node, modules: Sequence[str]) -> bool:
    """Whether an exported graph node comes from inside one of the named modules."""
    paths = {path for path, _ in (node.meta.get("nn_module_stack") or {}).values()}
    return any(m in paths for m in modules)


def mark_float(modules: Sequence[str]) -> Callable[[torch.fx.GraphModule], None]:
    """A pre-annotation rewrite that keeps nodes inside `modules` in float: they are marked as
    annotated with no quantization specs, and PT2E annotators skip annotated nodes."""
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    def rewrite(graph: torch.fx.GraphModule) -> None:
        for node in graph.graph.nodes:
            if node.op == "call_function" and in_modules(node, modules):
                node.meta["quantization_annotation"] = QuantizationAnnotation(_annotated=True)

    return rewrite


def _annotate(node: torch.fx.Node, inputs: dict[torch.fx.Node, Any], output: Any) -> None:
    """Mark a node quantized with these input specs and output spec; PT2E annotators then skip it."""
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    node.meta["quantization_annotation"] = QuantizationAnnotation(
        input_qspec_map=inputs, output_qspec=output, _annotated=True)


def chain(*rewrites: Callable[[torch.fx.GraphModule], None] | None) -> Callable[[torch.fx.GraphModule], None]:
    def rewrite(graph: torch.fx.GraphModule) -> None:
        for r in rewrites:
            if r is not None:
                r(graph)

    return rewrite


_SLICES = (torch.ops.aten.slice.Tensor, torch.ops.aten.slice_copy.Tensor, torch.ops.aten.narrow.default)


def slices_share_qparams(quantizer: Any) -> Callable[[torch.fx.GraphModule], None]:
    """A pre-annotation rewrite: every slice's output shares its input's int8 params.

    XNNPACK runs a quantized slice only when input and output params match. A slice that feeds an
    op with its own input observer (CycleMLP's softmax-gate branches) would otherwise get different
    params and fall out of the delegate.
    """
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    act_qspec = quantizer.global_config.input_activation

    def rewrite(graph: torch.fx.GraphModule) -> None:
        for node in graph.graph.nodes:
            if node.op != "call_function" or node.target not in _SLICES or "quantization_annotation" in node.meta:
                continue
            producer = node.args[0]
            _annotate(node, {producer: act_qspec}, SharedQuantizationSpec((producer, node)))

    return rewrite


_CONVS = (torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default)
# The one-hot kernels' buffers: the `conv` shift lowering's (edge_mlp.ops.shift) and the
# channels-last space-to-depth's (edge_mlp.ops.export_forms).
_ONE_HOT_KERNELS = ("kernel", "shift_kernel", "space_to_depth_kernel")
# What the models do to such a buffer on its way to the conv (dtype, shape, which kernel).
_KERNEL_VIEWS = (torch.ops.aten.to.dtype, torch.ops.aten._to_copy.default, torch.ops.aten.reshape.default,
                 torch.ops.aten.view.default, torch.ops.aten.select.int)


def _one_hot_kernel(weight: torch.fx.Node) -> bool:
    node = weight
    while node.op == "call_function" and node.target in _KERNEL_VIEWS:
        node = node.args[0]
    return node.op == "get_attr" and str(node.target).rsplit(".", 1)[-1] in _ONE_HOT_KERNELS


def shift_convs_share_qparams(quantizer: Any) -> Callable[[torch.fx.GraphModule], None]:
    """A pre-annotation rewrite: the one-hot convs (the `conv` shift lowering, the channels-last
    space-to-depth) stay exact in int8.

    Their depthwise one-hot kernel quantizes per channel to 127 x (1/127), and with the output
    sharing the input's int8 params the requantization returns each input code unchanged, as
    slicing does; an output observer of its own would re-round every value.
    """
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    act_qspec = quantizer.global_config.input_activation
    weight_qspec = quantizer.global_config.weight

    def rewrite(graph: torch.fx.GraphModule) -> None:
        for node in graph.graph.nodes:
            if node.op != "call_function" or node.target not in _CONVS or "quantization_annotation" in node.meta:
                continue
            producer, weight = node.args[0], node.args[1]
            if not _one_hot_kernel(weight):
                continue
            _annotate(node, {producer: act_qspec, weight: weight_qspec}, SharedQuantizationSpec((producer, node)))

    return rewrite


_GROUP_NORM = ("export_forms.GroupNorm1",)
_NORMS = ("export_forms.LayerNorm", *_GROUP_NORM)


def _in_norm(node: torch.fx.Node, norms: tuple[str, ...] = _NORMS) -> bool:
    types = [str(t) for _, t in (node.meta.get("nn_module_stack") or {}).values()]
    return any(t.endswith(norms) for t in types)


def tensor_adds_int8(quantizer: Any) -> Callable[[torch.fx.GraphModule], None]:
    """A pre-annotation rewrite: each add of two tensors outside the norms (residuals, branch sums)
    gets int8 inputs and output, as litert-torch's add annotator means to do.

    That annotator finds adds through `source_fn_stack`, which torch 2.13's export no longer records,
    so every add stayed float: a DEQUANTIZE / QUANTIZE island around each. Measured on as_mlp_mobile
    at 224 (LiteRT int8, 2 threads, 400 interleaved rounds, five runs): 2-4 % faster with int8 adds,
    although the GELUs those adds read become int8 too (converters.tflite.float_islands_in_delegate
    runs them in float inside XNNPACK again; README "Latency").
    """
    act_in, act_out = quantizer.global_config.input_activation, quantizer.global_config.output_activation
    adds = (torch.ops.aten.add.Tensor, torch.ops.aten.add_.Tensor)

    def rewrite(graph: torch.fx.GraphModule) -> None:
        for node in graph.graph.nodes:
            if (node.op != "call_function" or node.target not in adds or "quantization_annotation" in node.meta
                    or _in_norm(node)):
                continue
            a, b = node.args[:2]
            if isinstance(a, torch.fx.Node) and isinstance(b, torch.fx.Node):
                _annotate(node, {a: act_in, b: act_in}, act_out)

    return rewrite


def group_norm_ends_int8(quantizer: Any) -> Callable[[torch.fx.GraphModule], None]:
    """A pre-annotation rewrite: the XNNPACK GroupNorm (edge_mlp.ops.export_forms.GroupNorm1) centres
    and scales in int8 and keeps only its variance in float.

    Int8: the mean of x and its 1x1 averaging conv (mu), x - mu, (x - mu) * scale and the + beta of
    an unfolded norm. Float: the variance of x - mu, eps, rsqrt and gamma. float_norms left the
    whole norm float, with a full-tensor dequantize of x before it and a quantize of its output after;
    now one full-tensor dequantize (of x - mu, for the variance) remains, and the subtract and
    multiply run in int8. as_mlp_mobile at 224, ExecuTorch int8, 2 threads: about 5 % faster
    (400 interleaved rounds), top-1 agreement with PyTorch on the 10k Fashion-MNIST test set
    99.54 -> 99.45 %. x - mu is observed by min/max instead of a histogram: its tails carry the
    variance, and the histogram's clipped range gave 99.36 %. A norm in another shape (the stock
    ops of other targets, a LayerNorm) is left to float_norms.
    """
    import dataclasses

    from torchao.quantization.pt2e.observer import MinMaxObserver

    act_in, act_out = quantizer.global_config.input_activation, quantizer.global_config.output_activation
    weight = quantizer.global_config.weight
    full_range = dataclasses.replace(act_out, observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12))
    aten = torch.ops.aten

    def rewrite(graph: torch.fx.GraphModule) -> None:
        for sub in graph.graph.nodes:
            if sub.op != "call_function" or sub.target != aten.sub.Tensor or not _in_norm(sub, _GROUP_NORM):
                continue
            x, mu = sub.args[:2]
            mean = mu.args[0] if isinstance(mu, torch.fx.Node) and mu.target == aten.conv2d.default else None
            scales = [u for u in sub.users if u.target == aten.mul.Tensor and u.args[0] is sub and u.args[1] is not sub]
            if (mean is None or mean.target != aten.mean.dim or mean.args[0] is not x or len(scales) != 1
                    or any("quantization_annotation" in n.meta for n in (mean, mu, sub, scales[0]))):
                continue  # not the XNNPACK form: float_norms keeps it float
            scaled = scales[0]
            _annotate(mean, {x: act_in}, act_out)
            _annotate(mu, {mean: act_in, mu.args[1]: weight}, act_out)
            _annotate(sub, {x: act_in, mu: act_in}, full_range)
            _annotate(scaled, {sub: act_in, scaled.args[1]: act_in}, act_out)
            for beta in [u for u in scaled.users if u.target == aten.add.Tensor and _in_norm(u, _GROUP_NORM)]:
                _annotate(beta, {scaled: act_in, beta.args[1]: act_in}, act_out)

    return rewrite


def float_norms(graph: torch.fx.GraphModule) -> None:
    """A pre-annotation rewrite that keeps the inside of LayerNorm / GroupNorm in float (what
    group_norm_ends_int8 did not make int8).

    In their delegate form (edge_mlp.ops.export_forms) a norm is plain sub/mul/add, which the
    quantizer would otherwise make int8: normalizing in int8 cost the demo Mixer 1.7 points of
    top-1 agreement. Their input and output stay int8 (the neighbours quantize them).
    """
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    for node in graph.graph.nodes:
        if node.op == "call_function" and _in_norm(node):
            node.meta.setdefault("quantization_annotation", QuantizationAnnotation(_annotated=True))
