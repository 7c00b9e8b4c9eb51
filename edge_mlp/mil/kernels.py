"""Numpy semantics of the MIL ops our Core ML programs use, after the Core ML MIL op reference
(coremltools `mil/ops/defs`, iOS15-iOS17 opsets, and iOS18's weight compression ops).

Each kernel takes the op's named inputs as numpy values and returns its output(s) computed in
float64 for float tensors; the interpreter then stores each output in the dtype the program gives
it (that is where fp16 rounding happens). Written from the documented semantics, not by calling
coremltools, so an error in either shows up as a disagreement.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided
from scipy.special import erf

Args = dict[str, Any]
Kernel = Callable[[Args], Any]
KERNELS: dict[str, Kernel] = {}  # op type -> kernel (of the op's first definition we implement)
# (op type, opset of the coremltools definition it implements, `mil/ops/defs/<opset>/`) -> kernel. A
# later opset may redefine an op with other inputs and meaning (iOS18's constexpr_lut_to_dense has
# per-group LUTs and no `shape`): a definition missing here is refused up front, never run as another.
DEFINITIONS: dict[tuple[str, str], Kernel] = {}
IOS15_TO_IOS17 = ("iOS15", "iOS16", "iOS17")

DTYPES = {
    "fp16": np.float16, "fp32": np.float32, "fp64": np.float64, "int8": np.int8, "uint8": np.uint8,
    "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64,
    "bool": np.bool_,
}


def kernel(*names: str, defined_in: tuple[str, ...] = IOS15_TO_IOS17) -> Callable[[Kernel], Kernel]:
    def register(fn: Kernel) -> Kernel:
        for name in names:
            KERNELS.setdefault(name, fn)
            DEFINITIONS.update({(name, opset): fn for opset in defined_in})
        return fn
    return register


def kernel_for(op_type: str, definition: str) -> Kernel | None:
    """The kernel of `op_type` as opset `definition` defines it; None when we have none."""
    return DEFINITIONS.get((op_type, definition))


def f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def ints(x: Any) -> list[int]:
    return [int(v) for v in np.atleast_1d(np.asarray(x))]


def _axis(axis: Any, rank: int) -> int:
    axis = int(axis)
    return axis + rank if axis < 0 else axis


def _along(v: Any, axis: int | None, rank: int) -> np.ndarray:
    """A per-axis (vector) parameter broadcast to `rank` dims along `axis`; scalars pass through."""
    v = f64(v)
    if v.ndim == 0 or axis is None:
        return v
    shape = [1] * rank
    shape[_axis(axis, rank)] = v.size
    return v.reshape(shape)


# --- elementwise ---------------------------------------------------------------------------------

_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "real_div": np.divide, "pow": np.power,
    "maximum": np.maximum, "minimum": np.minimum,
}


def _binary(name: str) -> Kernel:
    fn = _BINARY[name]
    return lambda a: fn(f64(a["x"]), f64(a["y"])) if _is_float(a["x"], a["y"]) else fn(a["x"], a["y"])


for _name in _BINARY:
    kernel(_name)(_binary(_name))


def _is_float(*xs: Any) -> bool:
    return any(np.issubdtype(np.asarray(x).dtype, np.floating) for x in xs)


_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "square": np.square, "sqrt": np.sqrt, "exp": np.exp, "tanh": np.tanh, "abs": np.abs, "erf": erf,
    "relu": lambda x: np.maximum(x, 0.0), "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),
    "silu": lambda x: x * 0.5 * (1.0 + np.tanh(0.5 * x)),
}

for _name, _fn in _UNARY.items():
    kernel(_name)((lambda fn: lambda a: fn(f64(a["x"])))(_fn))


@kernel("rsqrt")
def rsqrt(a: Args) -> np.ndarray:
    return 1.0 / np.sqrt(f64(a["x"]) + float(a.get("epsilon", 1e-12)))


@kernel("inverse")
def inverse(a: Args) -> np.ndarray:
    return 1.0 / (f64(a["x"]) + float(a.get("epsilon", 1e-4)))


@kernel("log")
def log(a: Args) -> np.ndarray:
    return np.log(f64(a["x"]) + float(a.get("epsilon", 1e-45)))


@kernel("clip")
def clip(a: Args) -> np.ndarray:
    return np.clip(f64(a["x"]), float(a["alpha"]), float(a["beta"]))


@kernel("gelu")
def gelu(a: Args) -> np.ndarray:
    x, mode = f64(a["x"]), str(a.get("mode", "EXACT"))
    if mode == "EXACT":
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * 0.5 * (1.0 + np.tanh(0.5 * 1.702 * x))
    raise ValueError(f"unknown gelu mode {mode!r}")


@kernel("softmax")
def softmax(a: Args) -> np.ndarray:
    x = f64(a["x"])
    axis = int(a.get("axis", -1))
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@kernel("cast")
def cast(a: Args) -> np.ndarray:
    dtype = DTYPES[str(a["dtype"])]
    x = np.asarray(a["x"])
    if np.issubdtype(dtype, np.floating):
        return f64(x)  # the interpreter rounds to the declared dtype (or not, in its fp32 mode)
    if np.issubdtype(x.dtype, np.floating) and dtype is not np.bool_:
        x = np.trunc(x)  # float -> int casts truncate toward zero
    return x.astype(dtype)


# --- reductions and normalization ----------------------------------------------------------------

def _reduce_axes(a: Args, rank: int) -> tuple[int, ...] | None:
    axes = a.get("axes")
    return None if axes is None else tuple(_axis(v, rank) for v in ints(axes))


def _reduction(fn: Callable[..., np.ndarray]) -> Kernel:
    def run(a: Args) -> np.ndarray:
        x = f64(a["x"])
        return fn(x, axis=_reduce_axes(a, x.ndim), keepdims=bool(a.get("keep_dims", False)))
    return run


for _name, _fn in {"reduce_mean": np.mean, "reduce_sum": np.sum, "reduce_max": np.max}.items():
    kernel(_name)(_reduction(_fn))


def _normalize(x: np.ndarray, axes: tuple[int, ...], epsilon: float) -> np.ndarray:
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon)


def _per_channel(v: Any, rank: int) -> np.ndarray:
    return f64(v).reshape((1, -1) + (1,) * (rank - 2))


def _channel_affine(y: np.ndarray, a: Args) -> np.ndarray:
    """Optional per-channel (axis 1) gamma / beta of batch_norm and instance_norm."""
    if a.get("gamma") is not None:
        y = y * _per_channel(a["gamma"], y.ndim)
    if a.get("beta") is not None:
        y = y + _per_channel(a["beta"], y.ndim)
    return y


@kernel("layer_norm")
def layer_norm(a: Args) -> np.ndarray:
    x = f64(a["x"])
    axes = _reduce_axes(a, x.ndim) or tuple(range(x.ndim))
    y = _normalize(x, axes, float(a.get("epsilon", 1e-5)))
    # gamma / beta have the shape x.shape[axes] (in dim order): put them back on those dims, which
    # need not be the trailing ones (axes=[1] of a rank-3 x).
    shape = [n if i in axes else 1 for i, n in enumerate(x.shape)]
    if a.get("gamma") is not None:
        y = y * f64(a["gamma"]).reshape(shape)
    if a.get("beta") is not None:
        y = y + f64(a["beta"]).reshape(shape)
    return y


@kernel("batch_norm")
def batch_norm(a: Args) -> np.ndarray:
    x = f64(a["x"])
    y = (x - _per_channel(a["mean"], x.ndim)) / np.sqrt(_per_channel(a["variance"], x.ndim)
                                                         + float(a.get("epsilon", 1e-5)))
    return _channel_affine(y, a)


@kernel("instance_norm")
def instance_norm(a: Args) -> np.ndarray:
    x = f64(a["x"])
    return _channel_affine(_normalize(x, tuple(range(2, x.ndim)), float(a.get("epsilon", 1e-5))), a)


# --- linear algebra and convolution --------------------------------------------------------------

@kernel("linear")
def linear(a: Args) -> np.ndarray:
    y = f64(a["x"]) @ f64(a["weight"]).T
    return y + f64(a["bias"]) if a.get("bias") is not None else y


@kernel("matmul")
def matmul(a: Args) -> np.ndarray:
    x, y = f64(a["x"]), f64(a["y"])
    if a.get("transpose_x") and x.ndim > 1:
        x = np.swapaxes(x, -1, -2)
    if a.get("transpose_y") and y.ndim > 1:
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


def _spatial_padding(a: Args, spatial: tuple[int, ...], kernel_size: list[int], strides: list[int],
                     dilations: list[int]) -> list[tuple[int, int]]:
    pad_type = str(a.get("pad_type", "valid"))
    if pad_type == "valid":
        return [(0, 0)] * len(spatial)
    if pad_type == "custom":
        pad = ints(a["pad"])
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(len(spatial))]
    if pad_type in ("same", "same_lower"):
        out = []
        for size, k, s, d in zip(spatial, kernel_size, strides, dilations):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            out.append((small, big) if pad_type == "same" else (big, small))
        return out
    raise ValueError(f"unknown pad_type {pad_type!r}")


def _windows(x: np.ndarray, kernel_size: list[int], strides: list[int], dilations: list[int]) -> np.ndarray:
    """(N, C, *spatial) -> (N, C, *out, *kernel) view of the sliding windows (1-D to 3-D ops)."""
    n, c, *spatial = x.shape
    out = [(size - (k - 1) * d - 1) // s + 1 for size, k, s, d in zip(spatial, kernel_size, strides, dilations)]
    steps = x.strides[2:]
    window_strides = (*(t * s for t, s in zip(steps, strides)), *(t * d for t, d in zip(steps, dilations)))
    return as_strided(x, (n, c, *out, *kernel_size), (*x.strides[:2], *window_strides), writeable=False)


def _spatial_args(a: Args, x: np.ndarray, name: str) -> list[int]:
    """strides / dilations, one per spatial dim of x, default 1."""
    return ints(a[name]) if a.get(name) is not None else [1] * (x.ndim - 2)


@kernel("conv")
def conv(a: Args) -> np.ndarray:
    x, weight = f64(a["x"]), f64(a["weight"])
    k = list(weight.shape[2:])
    strides, dilations = _spatial_args(a, x, "strides"), _spatial_args(a, x, "dilations")
    x = np.pad(x, [(0, 0), (0, 0), *_spatial_padding(a, x.shape[2:], k, strides, dilations)])
    groups = int(a.get("groups", 1))
    n, cin, dims = x.shape[0], x.shape[1], len(k)
    cout = weight.shape[0]
    win = _windows(x, k, strides, dilations)  # (N, Cin, *out, *k)
    out = win.shape[2:2 + dims]
    # (N, G, P, Cin/G * prod(k)) @ (G, Cin/G * prod(k), Cout/G) -> (N, G, P, Cout/G), P = prod(out)
    cols = win.reshape(n, groups, cin // groups, *out, *k)
    cols = cols.transpose(0, 1, *range(3, 3 + dims), 2, *range(3 + dims, 3 + 2 * dims))
    cols = cols.reshape(n, groups, math.prod(out), -1)
    w = weight.reshape(groups, cout // groups, -1).transpose(0, 2, 1)
    y = np.matmul(cols, w).transpose(0, 1, 3, 2).reshape(n, cout, *out)
    if a.get("bias") is not None:
        y = y + f64(a["bias"]).reshape(1, -1, *[1] * dims)
    return y


def _pool(a: Args, reduce: str) -> np.ndarray:
    if a.get("ceil_mode"):
        raise ValueError("pooling with ceil_mode=True is not supported")
    x = f64(a["x"])
    k, strides, ones = ints(a["kernel_sizes"]), _spatial_args(a, x, "strides"), [1] * (x.ndim - 2)
    widths = [(0, 0), (0, 0), *_spatial_padding(a, x.shape[2:], k, strides, ones)]
    win = _windows(np.pad(x, widths, constant_values=-np.inf if reduce == "max" else 0.0), k, strides, ones)
    axes = tuple(range(-len(k), 0))
    if reduce == "max":
        return win.max(axis=axes)
    if a.get("exclude_padding_from_average"):
        inside = _windows(np.pad(np.ones((1, 1) + x.shape[2:]), widths), k, strides, ones)
        return win.sum(axis=axes) / inside.sum(axis=axes)
    return win.mean(axis=axes)  # padded zeros count in the average


@kernel("avg_pool")
def avg_pool(a: Args) -> np.ndarray:
    return _pool(a, "avg")


@kernel("max_pool")
def max_pool(a: Args) -> np.ndarray:
    return _pool(a, "max")


# --- shape and data movement ---------------------------------------------------------------------

@kernel("identity")
def identity(a: Args) -> Any:
    return a["x"]


@kernel("transpose")
def transpose(a: Args) -> np.ndarray:
    return np.transpose(a["x"], ints(a["perm"]))


@kernel("reshape")
def reshape(a: Args) -> np.ndarray:
    x, shape = np.asarray(a["x"]), ints(a["shape"])
    # iOS17: a 0 copies the dimension of x aligned from the right, or is 1 when there is none.
    offset = x.ndim - len(shape)
    shape = [(x.shape[i + offset] if 0 <= i + offset < x.ndim else 1) if s == 0 else s
             for i, s in enumerate(shape)]
    return x.reshape(shape)


@kernel("expand_dims")
def expand_dims(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    axes = ints(a["axes"])
    rank = x.ndim + len(axes)
    return np.expand_dims(x, tuple(v + rank if v < 0 else v for v in axes))


@kernel("squeeze")
def squeeze(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    axes = a.get("axes")
    return np.squeeze(x) if axes is None else np.squeeze(x, tuple(_axis(v, x.ndim) for v in ints(axes)))


@kernel("concat")
def concat(a: Args) -> np.ndarray:
    values = [np.asarray(v) for v in a["values"]]
    axis = _axis(a["axis"], values[0].ndim)
    if a.get("interleave"):
        stacked = np.stack(values, axis=axis + 1)
        shape = list(values[0].shape)
        shape[axis] *= len(values)
        return stacked.reshape(shape)
    return np.concatenate(values, axis=axis)


@kernel("split")
def split(a: Args) -> tuple[np.ndarray, ...]:
    x = np.asarray(a["x"])
    axis = _axis(a["axis"], x.ndim)
    if a.get("split_sizes") is not None:
        bounds = np.cumsum(ints(a["split_sizes"]))[:-1]
    else:
        n = int(a["num_splits"])
        size = math.ceil(x.shape[axis] / n)  # the last part is smaller when it does not divide
        bounds = [size * i for i in range(1, n)]
    return tuple(np.split(x, bounds, axis=axis))


@kernel("slice_by_index")
def slice_by_index(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    rank = x.ndim
    begin, end = ints(a["begin"]), ints(a["end"])
    stride = ints(a["stride"]) if a.get("stride") is not None else [1] * rank
    masks = {m: [bool(v) for v in np.atleast_1d(a[m])] if a.get(m) is not None else [False] * rank
             for m in ("begin_mask", "end_mask", "squeeze_mask")}
    index: list[Any] = []
    for i in range(rank):
        if masks["squeeze_mask"][i]:
            index.append(begin[i])
            continue
        index.append(slice(None if masks["begin_mask"][i] else begin[i],
                           None if masks["end_mask"][i] else end[i], stride[i]))
    return x[tuple(index)]


@kernel("pad")
def pad(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    flat = ints(a["pad"])
    k = len(flat) // 2  # pads the last k dims
    widths = [(0, 0)] * (x.ndim - k) + [(flat[2 * i], flat[2 * i + 1]) for i in range(k)]
    mode = str(a.get("mode", "constant"))
    if mode == "constant":
        return np.pad(x, widths, constant_values=np.asarray(a.get("constant_val", 0.0)).item())
    return np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge"}[mode])


@kernel("gather")
def gather(a: Args) -> np.ndarray:
    x, indices = np.asarray(a["x"]), np.asarray(a["indices"]).astype(np.int64)
    axis, batch_dims = _axis(a.get("axis", 0), x.ndim), int(a.get("batch_dims", 0))
    if np.any(indices >= x.shape[axis]) or np.any(indices < -x.shape[axis]):
        raise ValueError(f"gather index out of range for axis {axis} of size {x.shape[axis]}")
    if batch_dims == 0:
        return np.take(x, indices, axis=axis)
    batch = x.shape[:batch_dims]
    out = [np.take(x[b], indices[b], axis=axis - batch_dims) for b in np.ndindex(*batch)]
    return np.stack(out).reshape(*batch, *out[0].shape)


@kernel("tile")
def tile(a: Args) -> np.ndarray:
    return np.tile(a["x"], ints(a["reps"]))


# --- quantization --------------------------------------------------------------------------------

def _dequantize(q: Any, scale: Any, zero_point: Any, axis: Any) -> np.ndarray:
    q = f64(q)
    zp = 0.0 if zero_point is None else _along(zero_point, axis, q.ndim)
    return (q - zp) * _along(scale, axis, q.ndim)


@kernel("quantize")
def quantize(a: Args) -> np.ndarray:
    x = f64(a["input"])
    dtype = DTYPES[str(a["output_dtype"])]
    axis = a.get("axis")
    zp = 0.0 if a.get("zero_point") is None else _along(a["zero_point"], axis, x.ndim)
    q = np.rint(x / _along(a["scale"], axis, x.ndim)) + zp  # round half to even
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)


@kernel("dequantize")
def dequantize(a: Args) -> np.ndarray:
    return _dequantize(a["input"], a["scale"], a.get("zero_point"), a.get("axis"))


@kernel("constexpr_affine_dequantize")
def constexpr_affine_dequantize(a: Args) -> np.ndarray:
    return _dequantize(a["quantized_data"], a["scale"], a["zero_point"], a["axis"])


@kernel("constexpr_lut_to_dense", defined_in=("iOS16",))
def constexpr_lut_to_dense(a: Args) -> np.ndarray:
    """iOS16 form: `indices` packs n_bits per entry, LSB first, into bytes; `lut` has 2**n_bits entries."""
    lut = np.asarray(a["lut"])
    shape = ints(a["shape"])
    n_bits = int(round(math.log2(lut.shape[-1])))
    count = int(np.prod(shape))
    bits = np.unpackbits(np.asarray(a["indices"], dtype=np.uint8), bitorder="little")[: count * n_bits]
    indices = (bits.reshape(count, n_bits).astype(np.int64) << np.arange(n_bits)).sum(axis=1)
    return lut[indices].reshape(shape)


# iOS18 compression: the block or group of each weight element is its index // the block size per
# dim, where block size = the data's (indices') dim / the scale's (LUT's) dim.

def _blocks(params: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Per dim of `shape`, each position's block index into the leading dims of `params`."""
    return np.ix_(*(np.arange(n) // (n // g) for n, g in zip(shape, params.shape)))


@kernel("constexpr_blockwise_shift_scale", defined_in=("iOS18",))
def constexpr_blockwise_shift_scale(a: Args) -> np.ndarray:
    """output = scale * (data - offset), scale and offset per block."""
    data = f64(a["data"])
    scale = f64(a["scale"])
    blocks = _blocks(scale, data.shape)
    shifted = data - f64(a["offset"])[blocks] if a.get("offset") is not None else data
    return scale[blocks] * shifted


@kernel("constexpr_lut_to_dense", defined_in=("iOS18",))
def constexpr_lut_to_dense_ios18(a: Args) -> np.ndarray:
    """One LUT (lut[group..., 2**nbits, vector size]) per group of indices; a vector entry fills
    `vector_size` consecutive positions along `vector_axis`."""
    indices = np.asarray(a["indices"]).astype(np.int64)
    lut = np.asarray(a["lut"])
    groups = np.ravel_multi_index(_blocks(lut, indices.shape), lut.shape[:indices.ndim])
    values = lut.reshape(-1, *lut.shape[-2:])[groups, indices]  # indices.shape + (vector size,)
    if values.shape[-1] == 1:
        return values[..., 0]
    axis = _axis(a["vector_axis"], indices.ndim)
    shape = list(indices.shape)
    shape[axis] *= values.shape[-1]
    return np.moveaxis(values, -1, axis + 1).reshape(shape)
