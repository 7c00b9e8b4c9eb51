"""Known third-party noise, silenced at its source for our process, in this one place.

Each filter drops exactly one message, named below, that is harmless where edge-mlp runs; every
other record of the same loggers, and every real warning, still shows.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import tempfile
import warnings
from contextlib import contextmanager
from typing import Iterator

# logger name -> message fragments to drop
_NOISE: dict[str, tuple[str, ...]] = {
    # torchao 0.18 tries to load its CUDA-only extensions (_C_mxfp8, _C_cutlass_90a) on every
    # import and logs "Failed to load .../torchao/_C_....so: Could not load this library" on CPU.
    "torchao": ("Failed to load",),
    # torch 2.13 logs "<enum 'KernelPreference'> is an Enum subclass and is now natively supported
    # by torch.compile ... Calling register_constant() on Enum subclasses is deprecated" when
    # torchao registers its enums: a deprecation for torchao's maintainers, not our users.
    "torch.utils._pytree": ("register_constant() on Enum subclasses is deprecated",),
    # coremltools 9.0 logs "Failed to load _MLModelProxy: No module named
    # 'coremltools.libcoremlpython'" (and five more proxies) off macOS, where Core ML cannot run:
    # we say so ourselves where it matters (parity names the MIL interpreter).
    # It also logs "Torch version 2.13.0+cpu has not been tested with coremltools" and
    # "scikit-learn version ... is not supported ... Disabling scikit-learn conversion API": our
    # pinned set is verified (../shared/TOOLCHAIN.md) and we use no scikit-learn conversion.
    "coremltools": ("No module named 'coremltools.libcoremlpython'", "has not been tested with coremltools",
                    "Disabling scikit-learn conversion API"),
}


# Python warnings: (category, message regex). Matched exactly; every other warning still shows.
_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    # torch 2.13 deprecates isinstance(x, LeafSpec); ExecuTorch 1.5's lowering deep-copies pytree
    # specs, and each copy warns (nine times per conversion) from copyreg: for ExecuTorch's maintainers.
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
)

# Native libraries write these to file descriptor 2 directly, past Python's logging; each is a
# status line, not a problem (matched at the start of a line).
_NATIVE_NOISE = re.compile("|".join((
    r"WARNING: All log messages before absl::InitializeLog\(\) is called",  # absl's first-log banner
    r"I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on",  # TensorFlow import (litert)
    r"I\d{4} [\d:. ]+\d+ flatbuffer_export\.cc:\d+\] Estimated count of arithmetic ops",  # litert convert
    r"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.",  # LiteRT interpreter
    # LiteRT's C API (the `bench --profile` session): INFO-level set-up steps, and its probing for
    # NPU / GPU accelerator libraries that a CPU-only run never asks for
    r"INFO: \[\w+\.cc:\d+\] ",
    r"WARNING: \[(npu|gpu)_registry\.cc:\d+\] (NPU|GPU) accelerator could not be loaded and registered",
    r"\[cpuinfo_utils\.cpp:\d+\] ",  # ExecuTorch's threadpool probing /sys for ARM core types on x86
    r"\[threadpool\.cpp:\d+\] Resetting threadpool to \d+ threads",  # ExecuTorch, on `bench --threads`
    # The TFLite converter's INFO-level diagnostics of int8 graphs ("Missing quantization
    # parameters", "quantizer's output has another quantizer"): ops that stay float, which the
    # manifest's coverage lists and parity measures. A diagnostic spans two lines (text, blank).
    r"I\d{4} [\d:. ]+\d+ status_scoped_diagnostic_handler\.cc:\d+\] ",
    r"\s*$",  # the blank line after each diagnostic
)))

# Environment defaults for the CLI's own process (set before the libraries read them; a user's
# own setting wins): progress bars and step logs of libraries whose stages we report ourselves.
CLI_ENVIRONMENT = {
    "TQDM_DISABLE": "1",  # coremltools' "Converting PyTorch Frontend ==> MIL Ops" / MIL pipeline bars
    "LITERT_TORCH_SHOW_PROGRESS": "n",  # litert-torch's "(00:04) [START] LiteRT-Torch Convert > ..." lines
}


def quiet_cli_process() -> None:
    """For `edge-mlp` only: we own the process and its output there, not when used as a library."""
    for key, value in CLI_ENVIRONMENT.items():
        os.environ.setdefault(key, value)


_muted = False  # mute_process() was called: fds 1 and 2 stay on /dev/null


@contextmanager
def native_stderr() -> Iterator[None]:
    """Run a block with file descriptor 2 captured, then pass on every line that is not known
    native noise (_NATIVE_NOISE). For short calls into native runtimes and converters: output of
    the block appears when it ends. An interrupted block's output is dropped (the CLI reports the
    interrupt), and a process muted inside the block (`mute_process`) stays muted."""
    sys.stderr.flush()
    saved, python_stderr = os.dup(2), sys.stderr
    # pybind11 runtimes (ExecuTorch) may log through Python's sys.stderr rather than the fd
    sys.stderr = python_capture = io.StringIO()
    failed: BaseException | None = None
    interrupted = False
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except Exception as err:
            failed = err
            raise
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            sys.stderr = python_stderr
            # Muted meanwhile: fd 2 goes straight to /dev/null, never back to the terminal for a
            # moment (a signal checked in between would print there).
            if _muted:
                _to_devnull(2)
            else:
                os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace") + python_capture.getvalue()
            kept = [line for line in text.splitlines(keepends=True) if not _NATIVE_NOISE.match(line)]
            if kept and failed is not None:
                # The runtime's own account of the failure (e.g. ExecuTorch's "[program.cpp:114] File
                # size is too small"): the caller's one-line error tells it (see native_log).
                failed.native_log = "".join(kept).strip()  # type: ignore[attr-defined]
            elif kept and not interrupted and not _muted:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _to_devnull(*fds: int) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in fds:
        os.dup2(devnull, fd)
    os.close(devnull)


def mute_process() -> None:
    """From now on, everything this process writes to fds 1 and 2 goes nowhere, including what a
    `native_stderr` block around the caller would restore or pass on. For a conversion worker being
    stopped: the parent reports the interrupt, and a worker's own last words (a second signal's
    "Signal 15 ignored due to race condition", a C++ abort while torch.export unwinds) are noise."""
    global _muted
    _muted = True
    try:
        _to_devnull(1, 2)
    except OSError:
        pass


def native_log(err: BaseException) -> str | None:
    """The first native log line a failed `native_stderr` block wrote, without its source tag."""
    text = getattr(err, "native_log", None)
    return re.sub(r"^\[[\w./]+:\d+\]\s*", "", text.splitlines()[0]) if text else None


class _DropKnownNoise(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f in message for f in self.fragments)


def install() -> None:
    """Attach the filters (idempotent). Loggers exist before their libraries import, so this is
    cheap and needs no third-party import."""
    for name, fragments in _NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropKnownNoise) for f in logger.filters):
            logger.addFilter(_DropKnownNoise(fragments))
    for category, message in _WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
