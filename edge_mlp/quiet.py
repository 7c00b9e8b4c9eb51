"""Known third-party noise, silenced at its source for our process, in this one place.

Each filter drops exactly one message, named below, that is harmless where edge-mlp runs; every
other record of the same loggers, and every real warning, still shows.
"""

from __future__ import annotations

import logging

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
