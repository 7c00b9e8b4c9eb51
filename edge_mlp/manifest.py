"""The artifact manifest: one versioned schema, defined here only.

Every converted artifact gets `<artifact>.manifest.json` next to it. The CLI, tests, benchmarks and
the sample apps read it through this module (the apps mirror these field names in typed structs).
Bump SCHEMA_VERSION on any change that renames, removes or retypes a field.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import EdgeMlpError
from .fileio import folder_lock, sha256_path
from .preprocess import Preprocessing

SCHEMA_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"


@dataclass
class QuantParams:
    """Affine int8 mapping of an I/O tensor: real = (q - zero_point) * scale."""

    scale: float
    zero_point: int


@dataclass
class TensorSpec:
    name: str
    shape: list[int]
    dtype: str  # "float32", "float16", "int8"
    layout: str  # "NCHW" for images, "NC" for logits
    quantization: QuantParams | None = None


@dataclass
class ModelInfo:
    name: str
    family: str
    config: dict[str, Any]  # full constructor arguments: create_model(name, **config) rebuilds it
    macs: int | None = None  # multiply-accumulates for one image at the input size (apps' GFLOP/s)


@dataclass
class OutputInfo:
    tensor: TensorSpec
    meaning: str
    num_classes: int
    labels_file: str | None = None


@dataclass
class FeatureMap:
    """One output of a backbone (`convert --features-only`): a stage's feature map."""

    tensor: TensorSpec  # NCHW at the first input size, with its int8 quantization if any
    index: int  # the stage (out_indices value)
    stride: int  # input pixels per feature-map pixel
    channels: int


@dataclass
class InputSize:
    """One input size the artifact takes, and what runs it."""

    height: int
    width: int
    entry: str  # ExecuTorch method / LiteRT signature / Core ML function; "" for ONNX's dynamic axes


@dataclass
class QuantizationInfo:
    scheme: str  # human-readable: what is int8, per-channel or per-tensor, which tool
    tool: str
    calibration: dict[str, Any] | None = None
    float_blocks: list[str] = field(default_factory=list)  # blocks kept in float (accuracy budget)
    accuracy_budget: dict[str, Any] | None = None  # --max-drop: the budget and the measured drop


@dataclass
class ShiftLoweringInfo:
    requested: str  # "auto", "slice", "roll", or "none" for models without a shift
    used: str
    reason: str


@dataclass
class FileInfo:
    file: str | None  # artifact: its file name next to the manifest; weights: the source path
    sha256: str | None
    size_bytes: int | None = None


@dataclass
class TargetInfo:
    name: str  # executorch | coreml | tflite | onnx
    runtime: dict[str, str]  # package -> version used to convert


@dataclass
class Manifest:
    model: ModelInfo
    input: TensorSpec
    output: OutputInfo
    preprocessing: dict[str, Any]
    precision: str
    quantization: QuantizationInfo | None
    shift_lowering: ShiftLoweringInfo
    target: TargetInfo
    artifact: FileInfo
    weights: FileInfo
    coverage: dict[str, Any]  # ExecuTorch: delegated vs not, by op; TFLite: op histogram; ...
    conversion: dict[str, Any]  # wall_time_s and per-stage seconds
    edge_mlp_version: str
    schema_version: int = SCHEMA_VERSION
    notes: list[str] = field(default_factory=list)
    # A backbone's outputs, in output order (empty for a classifier, whose one output is `output`).
    features: list[FeatureMap] = field(default_factory=list)
    # Every input size the artifact takes, the first being `input`'s.
    input_sizes: list[InputSize] = field(default_factory=list)

    @property
    def is_backbone(self) -> bool:
        return bool(self.features)

    def sizes(self) -> list[tuple[int, int]]:
        """(H, W) of every input size, the first being `input`'s."""
        if self.input_sizes:
            return [(s.height, s.width) for s in self.input_sizes]
        return [(int(self.input.shape[2]), int(self.input.shape[3]))]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        if not isinstance(data, dict):
            raise EdgeMlpError(f"manifest is malformed: expected a JSON object, got {type(data).__name__}; "
                               "re-convert the artifact with edge-mlp convert")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise EdgeMlpError(
                f"manifest schema version {version!r} is not supported (this edge-mlp reads "
                f"version {SCHEMA_VERSION}); re-convert the artifact with this edge-mlp"
            )
        try:
            return _build(cls, data)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise EdgeMlpError(f"manifest is malformed: {err}") from None

    @classmethod
    def read(cls, path: str | Path) -> "Manifest":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise EdgeMlpError(f"cannot read manifest {path}: {err}") from None
        return cls.from_dict(data)


# Fields kept as plain dicts whose layout is fixed all the same (the apps read them typed).
DICT_FIELD_SCHEMAS: dict[tuple[type, str], type] = {(Manifest, "preprocessing"): Preprocessing}

_NESTED = {
    "model": ModelInfo, "input": TensorSpec, "output": OutputInfo, "quantization": QuantizationInfo,
    "shift_lowering": ShiftLoweringInfo, "target": TargetInfo, "artifact": FileInfo,
    "weights": FileInfo, "tensor": TensorSpec,
}
_LISTS = {"features": FeatureMap, "input_sizes": InputSize}


def _build(cls: type, data: dict[str, Any]) -> Any:
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise KeyError(f"missing field {cls.__name__}.{f.name}")
            continue
        value = data[f.name]
        if f.name == "quantization" and cls is TensorSpec:
            value = QuantParams(**value) if value else None
        elif f.name in _NESTED and isinstance(value, dict):
            value = _build(_NESTED[f.name], value)
        elif f.name in _LISTS and cls is Manifest:
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise TypeError(f"{f.name} must be a list of objects")
            value = [_build(_LISTS[f.name], v) for v in value]
        kwargs[f.name] = value
    return cls(**kwargs)


def manifest_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + MANIFEST_SUFFIX)


def split_artifact_path(path: str | Path) -> tuple[Path, Path]:
    """An artifact or its manifest -> (artifact, manifest file)."""
    path = Path(path)
    if path.name.endswith(MANIFEST_SUFFIX):
        return path.with_name(path.name[: -len(MANIFEST_SUFFIX)]), path
    return path, manifest_path(path)


def open_artifact(path: str | Path) -> tuple[Path, Manifest]:
    """An artifact or its manifest -> (artifact path, manifest), the schema version and sha256 checked."""
    artifact, manifest_file = split_artifact_path(path)
    if not manifest_file.is_file():
        raise EdgeMlpError(f"{path} has no manifest (expected {manifest_file}); convert with edge-mlp convert")
    with folder_lock(manifest_file.parent, shared=True):  # not while a conversion publishes here
        manifest = Manifest.read(manifest_file)
        if not artifact.exists():
            raise EdgeMlpError(f"artifact {artifact} named by {manifest_file} is missing")
        digest = sha256_path(artifact)
    if digest != manifest.artifact.sha256:
        raise EdgeMlpError(f"{artifact.name} does not match its manifest (sha256 {digest[:12]}... != "
                           f"{str(manifest.artifact.sha256)[:12]}...): it changed after conversion; re-convert it")
    return artifact, manifest
