"""Per-op times of a `.tflite` from LiteRT's own profiler, reached through the C API of the
ai-edge-litert wheel (`libLiteRt.so`): its Python `Interpreter` and `CompiledModel` expose no
profiler. The struct layouts below are LiteRT's `litert/c` headers as of ai-edge-litert 2.3; a wheel
without these symbols fails with a clear error, never a crash, before any model is run.

Rows are what the profiler records: XNNPACK kernels inside the delegate (e.g. "Convolution (NHWC,
QS8) IGEMM"), and builtin TFLite ops that stayed outside it (e.g. "GELU").
"""

from __future__ import annotations

import ctypes as C
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_mlp.errors import EdgeMlpError

_P = C.c_void_p
_CPU = 1  # kLiteRtHwAcceleratorCpu
_INVOKE, _OPERATOR, _DELEGATE_OPERATOR = 1, 2, 8  # ProfiledEventData.event_type values kept


class _Event(C.Structure):  # litert/c/litert_profiler_event.h
    _fields_ = [("tag", C.c_char_p), ("event_type", C.c_int), ("start_us", C.c_uint64),
                ("elapsed_us", C.c_uint64), ("begin_mem", C.c_size_t * 3), ("end_mem", C.c_size_t * 3),
                ("meta1", C.c_uint64), ("meta2", C.c_uint64), ("source", C.c_int)]


_SIGNATURES: dict[str, list[Any]] = {
    "LiteRtCreateEnvironment": [C.c_int, _P, C.POINTER(_P)],
    "LiteRtCreateModelFromFile": [_P, C.c_char_p, C.POINTER(_P)],
    "LiteRtCreateOptions": [C.POINTER(_P)],
    "LiteRtSetOptionsHardwareAccelerators": [_P, C.c_int],
    "LiteRtCreateOpaqueOptions": [C.c_char_p, _P, _P, C.POINTER(_P)],
    "LiteRtAddOpaqueOptions": [_P, _P],
    "LiteRtCreateCompiledModel": [_P, _P, _P, C.POINTER(_P)],
    "LiteRtGetModelSignature": [_P, C.c_size_t, C.POINTER(_P)],
    "LiteRtGetNumSignatureInputs": [_P, C.POINTER(C.c_size_t)],
    "LiteRtGetNumSignatureOutputs": [_P, C.POINTER(C.c_size_t)],
    "LiteRtGetSignatureInputTensorByIndex": [_P, C.c_size_t, C.POINTER(_P)],
    "LiteRtGetSignatureOutputTensorByIndex": [_P, C.c_size_t, C.POINTER(_P)],
    "LiteRtGetRankedTensorType": [_P, _P],
    "LiteRtGetCompiledModelInputBufferRequirements": [_P, C.c_size_t, C.c_size_t, C.POINTER(_P)],
    "LiteRtGetCompiledModelOutputBufferRequirements": [_P, C.c_size_t, C.c_size_t, C.POINTER(_P)],
    "LiteRtCreateManagedTensorBufferFromRequirements": [_P, _P, _P, C.POINTER(_P)],
    "LiteRtGetTensorBufferSize": [_P, C.POINTER(C.c_size_t)],
    "LiteRtLockTensorBuffer": [_P, C.POINTER(_P), C.c_int],
    "LiteRtUnlockTensorBuffer": [_P],
    "LiteRtRunCompiledModel": [_P, C.c_size_t, C.c_size_t, C.POINTER(_P), C.c_size_t, C.POINTER(_P)],
    "LiteRtCompiledModelGetProfiler": [_P, C.POINTER(_P)],
    "LiteRtStartProfiler": [_P],
    "LiteRtStopProfiler": [_P],
    "LiteRtResetProfiler": [_P],
    "LiteRtGetNumProfilerEvents": [_P, C.POINTER(C.c_int)],
    "LiteRtGetProfilerEvents": [_P, C.c_int, C.POINTER(_Event)],
}
# Each releases what one LiteRtCreate* above made (void functions); a session calls them in this
# order when it closes. Without them every profiled model stayed in memory with its XNNPACK
# runtime (about 70 MB for a one-op model), which ran a loop of profiles out of memory.
_DESTRUCTORS = ("LiteRtDestroyTensorBuffer", "LiteRtDestroyCompiledModel", "LiteRtDestroyOptions",
                "LiteRtDestroyModel", "LiteRtDestroyEnvironment")


def _library() -> C.CDLL:
    import ai_edge_litert

    path = Path(ai_edge_litert.__file__).parent / "libLiteRt.so"
    try:
        lib = C.CDLL(str(path))
        for name, argtypes in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = argtypes, C.c_int
        for name in _DESTRUCTORS:
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = [_P], None
    except (OSError, AttributeError) as err:
        raise EdgeMlpError(f"this ai-edge-litert has no LiteRT C profiler API ({err}); "
                           "profile with benchmark_model --enable_op_profiling instead") from None
    return lib


def _check(status: int, what: str) -> None:
    if status != 0:
        raise EdgeMlpError(f"LiteRT profiler: {what} failed (status {status})")


class _Session:
    def __init__(self, lib: C.CDLL, path: Path, threads: int) -> None:
        self.lib, self._alive = lib, []  # option payloads must outlive the compiled model
        self.env, self.model, self.options, self.compiled = _P(), _P(), _P(), _P()
        self.inputs: list[_P] = []
        self.outputs: list[_P] = []
        try:
            self._open(path, threads)
        except BaseException:
            self.close()
            raise

    def _open(self, path: Path, threads: int) -> None:
        lib, env = self.lib, self.env
        _check(lib.LiteRtCreateEnvironment(0, None, C.byref(env)), "environment")
        _check(lib.LiteRtCreateModelFromFile(env, str(path).encode(), C.byref(self.model)), "model")
        _check(lib.LiteRtCreateOptions(C.byref(self.options)), "options")
        _check(lib.LiteRtSetOptionsHardwareAccelerators(self.options, _CPU), "CPU accelerator")
        self._option(self.options, "runtime_options_string", "enable_profiling = true\n")
        self._option(self.options, "xnnpack", f"num_threads = {threads}\n")
        _check(lib.LiteRtCreateCompiledModel(env, self.model, self.options, C.byref(self.compiled)), "compile")
        signature = _P()
        _check(lib.LiteRtGetModelSignature(self.model, 0, C.byref(signature)), "signature")
        self._buffers(env, signature, "Input", self.inputs)
        self._buffers(env, signature, "Output", self.outputs)
        self.profiler = _P()
        _check(lib.LiteRtCompiledModelGetProfiler(self.compiled, C.byref(self.profiler)), "profiler")
        if not self.profiler.value:
            raise EdgeMlpError("LiteRT profiler: this runtime ignored enable_profiling")

    def close(self) -> None:
        """Releases what the session created, last first (the profiler belongs to the compiled model,
        the opaque options to the options); each handle once."""
        lib = self.lib
        for buffer in self.inputs + self.outputs:
            lib.LiteRtDestroyTensorBuffer(buffer)
        self.inputs, self.outputs = [], []
        for handle, destroy in ((self.compiled, lib.LiteRtDestroyCompiledModel), (self.options, lib.LiteRtDestroyOptions),
                                (self.model, lib.LiteRtDestroyModel), (self.env, lib.LiteRtDestroyEnvironment)):
            if handle.value:
                destroy(handle)
                handle.value = None

    def _option(self, options: _P, ident: str, toml: str) -> None:
        payload = C.create_string_buffer(toml.encode())
        release = C.CFUNCTYPE(None, _P)(lambda _: None)
        self._alive += [payload, release]
        opaque = _P()
        _check(self.lib.LiteRtCreateOpaqueOptions(ident.encode(), C.cast(payload, _P), C.cast(release, _P),
                                                  C.byref(opaque)), f"option {ident}")
        _check(self.lib.LiteRtAddOpaqueOptions(options, opaque), f"option {ident}")

    def _buffers(self, env: _P, signature: _P, kind: str, buffers: list[_P]) -> None:
        """Appends each buffer as it is made, so a failure part-way still releases the ones before."""
        count = C.c_size_t()
        getattr(self.lib, f"LiteRtGetNumSignature{kind}s")(signature, C.byref(count))
        for i in range(count.value):
            tensor, requirements, buffer = _P(), _P(), _P()
            tensor_type = C.create_string_buffer(512)  # LiteRtRankedTensorType, passed through opaquely
            _check(getattr(self.lib, f"LiteRtGetSignature{kind}TensorByIndex")(signature, i, C.byref(tensor)), kind)
            _check(self.lib.LiteRtGetRankedTensorType(tensor, tensor_type), f"{kind} type")
            _check(getattr(self.lib, f"LiteRtGetCompiledModel{kind}BufferRequirements")(
                self.compiled, 0, i, C.byref(requirements)), f"{kind} requirements")
            _check(self.lib.LiteRtCreateManagedTensorBufferFromRequirements(env, tensor_type, requirements,
                                                                            C.byref(buffer)), f"{kind} buffer")
            buffers.append(buffer)

    def write_input(self, data: np.ndarray) -> None:
        size, address = C.c_size_t(), _P()
        self.lib.LiteRtGetTensorBufferSize(self.inputs[0], C.byref(size))
        data = np.ascontiguousarray(data)
        if data.nbytes != size.value:
            raise EdgeMlpError(f"LiteRT profiler: input has {data.nbytes} bytes, the model takes {size.value}")
        _check(self.lib.LiteRtLockTensorBuffer(self.inputs[0], C.byref(address), 1), "lock input")
        C.memmove(address, data.ctypes.data, data.nbytes)
        self.lib.LiteRtUnlockTensorBuffer(self.inputs[0])

    def runner(self) -> Callable[[], None]:
        inputs, outputs = (_P * len(self.inputs))(*self.inputs), (_P * len(self.outputs))(*self.outputs)
        return lambda: _check(self.lib.LiteRtRunCompiledModel(self.compiled, 0, len(self.inputs), inputs,
                                                              len(self.outputs), outputs), "run")

    def events(self) -> list[_Event]:
        count = C.c_int()
        self.lib.LiteRtGetNumProfilerEvents(self.profiler, C.byref(count))
        events = (_Event * count.value)()
        _check(self.lib.LiteRtGetProfilerEvents(self.profiler, count.value, events), "events")
        return list(events)


def profile_runs(path: Path, data: np.ndarray, threads: int, runs: int) -> tuple[list[list[tuple[str, float]]], list[float]]:
    """(per run: (op, ms) events; per run: whole-inference ms). `data`: the input tensor as the
    model takes it (int8 models: quantized)."""
    from edge_mlp.quiet import native_stderr

    with native_stderr():  # the C API logs its set-up and accelerator probing at INFO level
        session = _Session(_library(), path, threads)
    try:
        return _profiled(session, data, runs)
    finally:
        with native_stderr():
            session.close()


def _profiled(session: _Session, data: np.ndarray, runs: int) -> tuple[list[list[tuple[str, float]]], list[float]]:
    session.write_input(data)
    run = session.runner()
    run()  # warm-up, not recorded
    per_run, totals = [], []
    lib = session.lib
    for _ in range(runs):
        lib.LiteRtResetProfiler(session.profiler)
        _check(lib.LiteRtStartProfiler(session.profiler), "start")
        run()
        lib.LiteRtStopProfiler(session.profiler)
        events, total = [], 0.0
        for e in session.events():
            tag = e.tag.decode() if e.tag else ""
            if e.event_type in (_OPERATOR, _DELEGATE_OPERATOR) and tag != "DELEGATE" and not tag.startswith("LiteRT::"):
                events.append((tag, e.elapsed_us / 1000.0))
            elif e.event_type == _INVOKE and tag == "Invoke":
                total = e.elapsed_us / 1000.0
        per_run.append(events)
        totals.append(total)
    return per_run, totals
