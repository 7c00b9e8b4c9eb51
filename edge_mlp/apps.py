"""The sample apps as edge-mlp sees them: where each loads bundled artifacts from, which targets it
runs, where it declares the manifest and bench fields it reads, and the preprocessing vectors it
must reproduce. `edge-mlp bundle`, the contract tests and the vectors all read this table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .converters import all_converters
from .errors import EdgeMlpError
from .preprocess import Preprocessing, quantize_input

REPO_APPS = Path(__file__).resolve().parent.parent / "apps"
VECTORS_VERSION = 1


@dataclass(frozen=True)
class AppLayout:
    name: str
    marker: str  # a file that identifies the app's folder
    bundle_dir: str  # where bundled artifacts, manifests, labels and samples/ go
    manifest_structs: str  # declares the manifest fields the app reads (root type `Manifest`)
    bench_structs: str  # declares the bench JSON the app writes (root type `BenchReport`)
    vectors: str  # preprocessing vectors next to the app's preprocessing unit test
    # The OS whose version the app's marker (an XcodeGen project.yml) declares as its deployment
    # target; `bundle` refuses artifacts whose manifest needs a newer one. None: no such check.
    deploys_to: str | None = None

    def default_dir(self) -> Path:
        return REPO_APPS / self.name

    def deployment_target(self, app_dir: Path) -> tuple[int, ...] | None:
        """The app's deployment target as version numbers ((17, 0)), read from its project.yml
        (XcodeGen: the application target's `deploymentTarget`, else `options.deploymentTarget`),
        so it is declared in one place. None: the app declares none (Xcode then builds for the SDK's
        own, newest OS) or the layout has no such check."""
        if self.deploys_to is None:
            return None
        import yaml  # PyYAML: installed with executorch, which edge-mlp pins

        path = app_dir / self.marker
        try:
            project = yaml.safe_load(path.read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise EdgeMlpError(f"cannot read the deployment target of the {self.name} app from {path}: "
                               f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
        declared = None
        if isinstance(project, dict):
            targets = project.get("targets")
            for target in targets.values() if isinstance(targets, dict) else ():
                if isinstance(target, dict) and target.get("type") == "application" and target.get("deploymentTarget"):
                    declared = target["deploymentTarget"]
            options = project.get("options") or {}
            if declared is None and isinstance(options, dict) and isinstance(options.get("deploymentTarget"), dict):
                declared = options["deploymentTarget"].get(self.deploys_to)
        if declared is None:
            return None
        version = parse_version(str(declared))
        if version is None:
            raise EdgeMlpError(f"{path} declares the deployment target {declared!r}, which is not a version "
                               f"like \"17.0\"")
        return version

    @property
    def targets(self) -> tuple[str, ...]:
        """Targets whose artifacts the app runs: each target says so (`Converter.apps`)."""
        return tuple(c.target for c in all_converters() if self.name in c.apps)


APPS: dict[str, AppLayout] = {
    "android": AppLayout(
        name="android", marker="settings.gradle.kts",
        bundle_dir="app/src/main/assets/edge_mlp",
        manifest_structs="app/src/main/java/dev/edgemlp/demo/core/Manifest.kt",
        bench_structs="app/src/main/java/dev/edgemlp/demo/core/BenchReport.kt",
        vectors="app/src/test/resources/preprocess_vectors.json",
    ),
    "ios": AppLayout(
        name="ios", marker="project.yml",
        bundle_dir="EdgeMLPDemo/Bundle",
        manifest_structs="EdgeMLPCore/Sources/EdgeMLPCore/Manifest.swift",
        bench_structs="EdgeMLPCore/Sources/EdgeMLPCore/BenchReport.swift",
        vectors="EdgeMLPCore/Tests/EdgeMLPCoreTests/Resources/preprocess_vectors.json",
        deploys_to="iOS",
    ),
}


def parse_version(text: str, platform: str = "") -> tuple[int, ...] | None:
    """"17.0" -> (17, 0); with `platform`, "iOS18" -> (18,) (a manifest's Core ML target). None if
    it is not one."""
    match = re.fullmatch(re.escape(platform) + r"\s*(\d+(?:\.\d+)*)", text.strip())
    return tuple(int(v) for v in match.group(1).split(".")) if match else None


def format_version(version: tuple[int, ...]) -> str:
    return ".".join(str(v) for v in version)


def app_layout(name: str) -> AppLayout:
    if name not in APPS:
        raise EdgeMlpError(f"unknown app {name!r}; apps: {', '.join(APPS)}")
    return APPS[name]


# --- preprocessing vectors --------------------------------------------------------------------

_IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def _cases() -> list[dict[str, Any]]:
    """Each case: an RGBA image and the preprocessing to apply; chosen to cover what can go wrong."""
    from .data import npz
    from .demo import EVAL_SUBSET, FASHION_MNIST_DATA

    rng = np.random.default_rng(7)
    gray = npz(EVAL_SUBSET).images[0]  # a real 28x28 Fashion-MNIST image, as the demo app sees it
    demo = dict(mean=FASHION_MNIST_DATA.mean, std=FASHION_MNIST_DATA.std)
    return [
        dict(name="fashion_mnist_demo: gray 28x28 -> 32 bilinear, upscale",
             rgba=np.dstack([gray, gray, gray, np.full_like(gray, 255)]),
             pre=dict(resize=32, crop=(32, 32), interpolation="bilinear", **demo)),
        dict(name="photo_shrink_bicubic: 61x47 -> 18, crop 16 (antialiased downscale)",
             rgba=rng.integers(0, 256, (47, 61, 4), dtype=np.uint8),
             pre=dict(resize=18, crop=(16, 16), interpolation="bicubic", **_IMAGENET)),
        dict(name="enlarge_bicubic_portrait: 13x17 -> 20, crop 24x20 (negative taps clip; h != w)",
             rgba=rng.integers(0, 256, (17, 13, 4), dtype=np.uint8),
             pre=dict(resize=20, crop=(24, 20), interpolation="bicubic", **_IMAGENET)),
        dict(name="landscape_shrink_bilinear_int8: 50x23 -> 12, crop 12, int8 input",
             rgba=rng.integers(0, 256, (23, 50, 4), dtype=np.uint8),
             pre=dict(resize=12, crop=(12, 12), interpolation="bilinear", **_IMAGENET),
             quant=dict(scale=0.018712, zero_point=-3)),
    ]


def preprocess_vectors() -> dict[str, Any]:
    """Inputs and the Python reference's outputs, for the apps' own preprocessing unit tests.

    `resized_rgb` is exact (0..255, HWC after resize + center crop); `expected` is float32 NCHW
    (apps compare within 1e-6; the Kotlin port is bit-exact); `quantized` is the int8 input.
    """
    cases = []
    for case in _cases():
        pre = Preprocessing(**case["pre"])
        image = Image.fromarray(case["rgba"], "RGBA")
        x = pre(image)
        out = dict(
            name=case["name"], width=image.width, height=image.height,
            rgba=case["rgba"].reshape(-1).tolist(),
            preprocessing={k: list(v) if isinstance(v, tuple) else v for k, v in pre.to_dict().items()},
            resized_rgb=np.asarray(pre.resized(image)).reshape(-1).tolist(),
            expected=[float(v) for v in x.reshape(-1)],
        )
        if "quant" in case:
            q = case["quant"]
            out["quantization"] = dict(q, expected=quantize_input(x, q["scale"], q["zero_point"]).reshape(-1).tolist())
        cases.append(out)
    return {
        "vectors_version": VECTORS_VERSION,
        "about": "edge-mlp preprocessing vectors: RGBA8 row-major input -> resize shorter side (Pillow "
                 "resampling), center crop, x * scale, (x - mean) / std in float32, NCHW. Generated by "
                 "edge_mlp.apps.preprocess_vectors(); `make app-vectors` rewrites every app's copy.",
        "cases": cases,
    }


def write_vectors(apps_root: Path = REPO_APPS) -> list[Path]:
    text = json.dumps(preprocess_vectors(), separators=(",", ":")) + "\n"
    written = []
    for layout in APPS.values():
        path = apps_root / layout.name / layout.vectors
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_vectors():
        print(p)
