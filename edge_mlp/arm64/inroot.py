"""Runs inside the arm64 root, under QEMU (edge_mlp.arm64.runner copies it there for each run).

`python3 inroot.py REQUEST.json`: loads one artifact on its runtime by suffix, picks the entry
point of the batch's input size as the host runners do (edge_mlp.converters.*: the request names
the size's entry, `forward_HxW` / `serving_default_HxW`, and the default one, taken when the
artifact has no such entry), runs every image of the batch in this one process, one image at a
time as HostModel.batch_outputs does, and writes every output (.npz, out_0, out_1, ... in the
artifact's output order) and a JSON report: machine, entry point, timings and evidence of which
kernels ran. Self-contained on purpose: it imports only what the root has (numpy, ai_edge_litert,
onnxruntime, and the ExecuTorch driver through ctypes), not edge_mlp. The input handling mirrors
the host runners: float32 NCHW in; a LiteRT int8-I/O model gets its input quantized and its
outputs dequantized with the same float32 arithmetic (edge_mlp.preprocess.quantize_input,
converters/tflite.py input_tensor / _dequantized).
"""

import ctypes
import json
import os
import platform
import sys
import time

import numpy as np


def _ms(start):
    return (time.perf_counter() - start) * 1000.0


def _pick(names, request):
    """The size's entry point if the artifact has it, else the default (converters/*: _method, _signature)."""
    return request["entry"] if request["entry"] in names else request["default_entry"]


def run_pte(request, x):
    """ExecuTorch: the wheel's own C++ runtime (optimized kernels + XNNPACK delegate) through
    libetd.so (et_driver.cpp), loaded as executorch.runtime loads a program and its method."""
    lib = ctypes.CDLL(request["driver"])
    lib.etd_error.restype = ctypes.c_char_p
    lib.etd_method_name.restype = ctypes.c_char_p
    lib.etd_method_backend.restype = ctypes.c_char_p
    lib.etd_registered_backend.restype = ctypes.c_char_p
    lib.etd_load.argtypes = [ctypes.c_char_p]
    lib.etd_load_method.argtypes = [ctypes.c_char_p]
    lib.etd_backend_available.argtypes = [ctypes.c_char_p]
    f32p = ctypes.POINTER(ctypes.c_float)
    lib.etd_run.argtypes = [ctypes.c_char_p, f32p, ctypes.POINTER(ctypes.c_int32), ctypes.c_int]
    lib.etd_output_size.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.etd_output_size.restype = ctypes.c_int64
    lib.etd_output_copy.argtypes = [ctypes.c_int, f32p, ctypes.c_int64]
    lib.etd_output_copy.restype = ctypes.c_int64

    def check(rc):
        if rc < 0:
            raise RuntimeError(lib.etd_error().decode())
        return rc

    start = time.perf_counter()
    check(lib.etd_load(request["artifact"].encode()))
    methods = [lib.etd_method_name(i).decode() for i in range(lib.etd_num_methods())]
    entry = _pick(methods, request)
    check(lib.etd_load_method(entry.encode()))
    load_ms = _ms(start)
    method_backends = [lib.etd_method_backend(i).decode() for i in range(lib.etd_num_method_backends())]
    registered = [lib.etd_registered_backend(i).decode() for i in range(lib.etd_num_registered_backends())]
    available = {name: bool(lib.etd_backend_available(name.encode())) for name in method_backends}
    buffer = np.empty(1 << 22, np.float32)
    outputs, times = [], []
    for i in range(len(x)):
        image = np.ascontiguousarray(x[i:i + 1], np.float32)
        sizes = (ctypes.c_int32 * image.ndim)(*image.shape)
        start = time.perf_counter()
        count = check(lib.etd_run(entry.encode(), image.ctypes.data_as(f32p), sizes, image.ndim))
        times.append(_ms(start))
        row = []
        for k in range(count):
            shape = tuple(lib.etd_output_size(k, d) for d in range(lib.etd_output_ndim(k)))
            n = check(lib.etd_output_copy(k, buffer.ctypes.data_as(f32p), buffer.size))
            row.append(buffer[:n].reshape(shape).copy())
        outputs.append(row)
    evidence = {"methods": methods, "method_backends": method_backends, "registered_backends": registered,
                "backend_available": available}
    xnnpack = "XnnpackBackend" in method_backends and available.get("XnnpackBackend", False)
    return entry, outputs, load_ms, times, xnnpack, evidence


def executed_ops(it):
    """Op names a LiteRT interpreter really runs (converters/tflite.py's delegation figures use it
    too). It lists the original nodes plus appended DELEGATE nodes; the executed ones are those
    needed for the outputs when each DELEGATE node produces its own outputs."""
    ops = it._get_ops_details()
    producer = {}
    for op in ops:  # DELEGATE nodes come last, so they take over the tensors they produce
        for t in op["outputs"]:
            producer[int(t)] = op
    needed = [int(d["index"]) for d in it.get_output_details()]
    seen, executed = set(), []
    while needed:
        op = producer.get(needed.pop())
        if op is None or op["index"] in seen:
            continue
        seen.add(op["index"])
        executed.append(op["op_name"])
        needed.extend(int(t) for t in op["inputs"] if t >= 0)
    return executed


def _quantized(image, detail):
    """edge_mlp.preprocess.quantize_input, for an int8-I/O input."""
    if np.dtype(detail["dtype"]) == np.float32:
        return image
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(image / np.float32(scale)) + zero_point, info.min, info.max).astype(detail["dtype"])


def _dequantized(y, detail):
    if np.dtype(detail["dtype"]) != np.float32:
        scale, zero_point = detail["quantization"]
        y = (y.astype(np.float32) - zero_point) * scale
    return y.astype(np.float32)


def _output_number(name):
    """litert-torch names a signature's outputs output_0, output_1, ... in the model's order."""
    digits = name.rsplit("_", 1)[-1]
    return int(digits) if digits.isdigit() else 0


def run_tflite(request, x):
    """LiteRT: ai_edge_litert's Interpreter with its default delegate (XNNPACK), as the host runs it:
    the signature of the input's size (converters/tflite.py _Interpreter), its outputs in the
    model's order; a model without signatures: its one output."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    start = time.perf_counter()
    it = Interpreter(model_path=request["artifact"], experimental_op_resolver_type=OpResolverType.AUTO,
                     num_threads=None)
    it.allocate_tensors()
    signatures = list(it.get_signature_list())
    entry = _pick(signatures, request) if signatures else ""
    if entry:
        runner = it.get_signature_runner(entry)
        (name, inp), = runner.get_input_details().items()
        outs = sorted(runner.get_output_details().items(), key=lambda kv: _output_number(kv[0]))
    else:
        runner, name, inp = None, None, it.get_input_details()[0]
        outs = [(None, it.get_output_details()[0])]
    load_ms = _ms(start)
    raw = Interpreter(model_path=request["artifact"],
                      experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    ops_total = len(raw._get_ops_details())
    executed = executed_ops(it)
    partitions = executed.count("DELEGATE")
    outside = [op for op in executed if op != "DELEGATE"]
    outputs, times = [], []
    for i in range(len(x)):
        image = _quantized(np.ascontiguousarray(x[i:i + 1], np.float32), inp)
        start = time.perf_counter()
        if runner is not None:
            result = runner(**{name: image})
            times.append(_ms(start))
            outputs.append([_dequantized(result[n], d) for n, d in outs])
        else:
            it.set_tensor(inp["index"], image)
            it.invoke()
            times.append(_ms(start))
            outputs.append([_dequantized(it.get_tensor(outs[0][1]["index"]), outs[0][1])])
    # The executed-op walk covers the interpreter's primary subgraph (the first signature's).
    evidence = {"signatures": signatures, "delegate_partitions": partitions, "ops_total": ops_total,
                "ops_delegated": ops_total - len(outside), "ops_outside_delegate": sorted(set(outside)),
                "input_dtype": np.dtype(inp["dtype"]).name, "input_shape": [int(s) for s in inp["shape"]],
                "output_dtypes": [np.dtype(d["dtype"]).name for _, d in outs]}
    return entry, outputs, load_ms, times, partitions > 0, evidence


def run_onnx(request, x):
    """ONNX Runtime, CPU execution provider, with the host runner's session options: one graph
    (dynamic axes), every output."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    start = time.perf_counter()
    session = ort.InferenceSession(request["artifact"], options, providers=["CPUExecutionProvider"])
    load_ms = _ms(start)
    name = session.get_inputs()[0].name
    outputs, times = [], []
    for i in range(len(x)):
        feed = {name: np.ascontiguousarray(x[i:i + 1], np.float32)}
        start = time.perf_counter()
        outputs.append([np.asarray(o, np.float32) for o in session.run(None, feed)])
        times.append(_ms(start))
    evidence = {"providers": session.get_providers(), "outputs": [o.name for o in session.get_outputs()]}
    return "", outputs, load_ms, times, None, evidence


RUNNERS = {".pte": run_pte, ".tflite": run_tflite, ".onnx": run_onnx}
PACKAGES = {".pte": "executorch", ".tflite": "ai-edge-litert", ".onnx": "onnxruntime"}


def main(request_path):
    with open(request_path) as handle:
        request = json.load(handle)
    suffix = os.path.splitext(request["artifact"])[1]
    x = np.load(request["inputs"])
    entry, outputs, load_ms, times, xnnpack, evidence = RUNNERS[suffix](request, x)
    columns = {f"out_{k}": np.concatenate([row[k] for row in outputs]).astype(np.float32)
               for k in range(len(outputs[0]))}
    np.savez(request["outputs"], **columns)
    report = {"machine": platform.machine(), "python": platform.python_version(), "numpy": np.__version__,
              "qemu_cpu": os.environ.get("QEMU_CPU", ""), "entry": entry, "load_ms": load_ms, "infer_ms": times,
              "xnnpack": xnnpack, "evidence": evidence, "package": PACKAGES[suffix]}
    with open(request["report"], "w") as handle:
        json.dump(report, handle)


if __name__ == "__main__":
    main(sys.argv[1])
