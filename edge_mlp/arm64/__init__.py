"""Artifacts run on arm64 kernels (XNNPACK / LiteRT / ONNX Runtime NEON code) under user-mode QEMU.

`prepare_root()` builds, once per cache folder, an arm64 Debian root holding the aarch64 wheels of
the host's runtime versions (edge_mlp.arm64.root); `run_arm64(artifact, inputs)` runs an artifact
there on an emulated CPU model and returns every output, from the entry point of the input's size,
with evidence of what ran (edge_mlp.arm64.runner). `edge_mlp.arm64.parity` builds on it:
`run_parity_arm64(artifact)` (the x86 and arm64 ParityReports and their difference), `check_arm64`
and `arm64_rows` for `edge-mlp parity --arch arm64`; it imports torch for the PyTorch reference, so
it is not imported here. Needs root and binfmt_misc; `make arm64` builds the root. Nothing imported
here imports torch.
"""

from .errors import Arm64Error, Arm64Unavailable
from .root import Arm64Root, prepare_root
from .runner import ArmRun, run_arm64

__all__ = ["Arm64Error", "Arm64Root", "Arm64Unavailable", "ArmRun", "prepare_root", "run_arm64"]
