"""`edge-mlp bundle`: put converted artifacts into a sample app, checked first, all or nothing.

Each artifact's manifest must be of this edge-mlp's schema version, its sha256 must match the
artifact on disk, its target must be one the app runs, and the OS version it needs (a Core ML
package's minimum deployment target) must not be newer than the app's. Only then is anything copied: the
artifacts, their manifests and labels, and sample images, staged in a temp folder inside the app's
bundle folder and renamed into place.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .apps import AppLayout, app_layout, format_version, parse_version
from .errors import EdgeMlpError
from .data import npz, open_image
from .fileio import TEMP_PREFIX, folder_lock, publish, staging_dir
from .manifest import MANIFEST_SUFFIX, Manifest, open_artifact, split_artifact_path

SAMPLES_DIR = "samples"
KEEP = {".gitkeep", "README.md"}  # the bundle folder's own files: never removed by --clean


@dataclass
class BundleJob:
    sources: list[str]  # artifacts, their manifests, or folders of them
    app: str  # android | ios
    app_dir: str | None = None  # default: apps/<app> of this checkout
    images: list[str] | None = None  # sample images (files or folders); default: Fashion-MNIST eval subset
    samples: int = 10
    clean: bool = False  # empty the bundle folder first (keeps .gitkeep and README.md)


@dataclass
class BundledArtifact:
    artifact: Path  # where it now is in the app
    manifest: Manifest


@dataclass
class BundleResult:
    layout: AppLayout
    bundle_dir: Path
    artifacts: list[BundledArtifact]
    samples: list[str]
    skipped: list[str] = field(default_factory=list)  # artifacts of a folder whose target the app cannot run


@dataclass
class _Checked:
    artifact: Path
    manifest_file: Path
    manifest: Manifest
    labels: Path | None


def bundle(job: BundleJob) -> BundleResult:
    layout = app_layout(job.app)
    app_dir = _app_dir(layout, job.app_dir)
    checked, skipped = _collect(job.sources, layout, layout.deployment_target(app_dir))
    images = _sample_images(job.images, job.samples)
    bundle_dir = app_dir / layout.bundle_dir
    with staging_dir(bundle_dir) as stage:
        for item in checked:
            _copy(item.artifact, stage / item.artifact.name)
            shutil.copy2(item.manifest_file, stage / item.manifest_file.name)
            if item.labels is not None:
                shutil.copy2(item.labels, stage / item.labels.name)
        (stage / SAMPLES_DIR).mkdir()
        for name, image in images:
            image.save(stage / SAMPLES_DIR / name)
        # Two bundles into one app publish one after the other. The lock file sits in the app's
        # root, not among the assets that are packaged into it.
        with folder_lock(app_dir):
            if job.clean:
                for old in bundle_dir.iterdir():
                    if old.name not in KEEP and not old.name.startswith(TEMP_PREFIX):
                        shutil.rmtree(old) if old.is_dir() else old.unlink()
            for staged in sorted(stage.iterdir()):
                publish(staged, bundle_dir / staged.name)
    bundled = [BundledArtifact(bundle_dir / c.artifact.name, c.manifest) for c in checked]
    return BundleResult(layout, bundle_dir, bundled, [name for name, _ in images], skipped)


def _app_dir(layout: AppLayout, given: str | None) -> Path:
    path = Path(given) if given else layout.default_dir()
    if not (path / layout.marker).is_file():
        hint = "pass --app-dir with the path of apps/" + layout.name if given is None else \
            f"point --app-dir at the {layout.name} app (the folder with {layout.marker})"
        raise EdgeMlpError(f"{path} is not the edge-mlp {layout.name} app (no {layout.marker}); {hint}")
    return path


def _collect(sources: list[str], layout: AppLayout,
             app_target: tuple[int, ...] | None = None) -> tuple[list[_Checked], list[str]]:
    """Every artifact to bundle, checked; an explicit artifact the app cannot run is an error,
    one found in a folder is skipped (a folder from `convert --target all` holds every target).
    `app_target`: the app's deployment target (None: no OS version check)."""
    checked: list[_Checked] = []
    skipped: list[str] = []
    for source in sources:
        path = Path(source)
        if path.is_dir() and not (path / "Manifest.json").is_file():  # a folder, not an .mlpackage
            manifests = sorted(path.glob(f"*{MANIFEST_SUFFIX}"))
            if not manifests:
                raise EdgeMlpError(f"{path} holds no *{MANIFEST_SUFFIX}; convert first (edge-mlp convert ... --out {path})")
            for m in manifests:
                item = _check(m, layout, explicit=False, app_target=app_target)
                (checked.append(item) if isinstance(item, _Checked) else skipped.append(item))
        elif path.exists():
            checked.append(_check(path, layout, explicit=True, app_target=app_target))
        else:
            raise EdgeMlpError(f"{path} does not exist; give artifacts (.pte/.tflite/.mlpackage) or their folder")
    if not checked:
        raise EdgeMlpError(f"nothing the {layout.name} app can run in {', '.join(sources)} (it runs "
                           f"{' and '.join(layout.targets)}); convert with --target {layout.targets[0]}")
    names = [c.artifact.name for c in checked]
    if len(set(names)) != len(names):
        raise EdgeMlpError("two artifacts share a file name; bundle them one at a time")
    return checked, skipped


def _check(path: Path, layout: AppLayout, explicit: bool, app_target: tuple[int, ...] | None = None) -> _Checked | str:
    """The checked artifact, or (found in a folder, of a target the app cannot run) its skip note.
    One the app can run but whose OS version it does not deploy to is refused wherever it was found:
    the app would fail to load it on its oldest supported devices."""
    artifact, manifest_file = split_artifact_path(path)
    if not explicit:  # skip other targets' artifacts without hashing them
        target = Manifest.read(manifest_file).target.name
        if target not in layout.targets:
            return f"{artifact.name} ({target})"
    artifact, manifest = open_artifact(path)  # schema version, artifact present, sha256
    target = manifest.target.name
    if target not in layout.targets:
        raise EdgeMlpError(f"the {layout.name} app cannot run {target} artifacts ({artifact.name}); it runs "
                           f"{' and '.join(layout.targets)}: convert with --target {layout.targets[0]}")
    _check_deployment(artifact, manifest, layout, app_target)
    if manifest.is_backbone:
        raise EdgeMlpError(f"{artifact.name} is a backbone (feature maps, no classes); the sample apps classify "
                           "photos: bundle a classifier (convert without --features-only)")
    if len(manifest.sizes()) > 1:
        raise EdgeMlpError(f"{artifact.name} takes several input sizes; the sample apps run one: bundle an "
                           "artifact converted with a single --img-size")
    if manifest.artifact.file != artifact.name:
        raise EdgeMlpError(f"{manifest_file.name} describes {manifest.artifact.file}, not {artifact.name}; "
                           "keep each artifact with its own manifest")
    labels = None
    if manifest.output.labels_file:
        labels = artifact.with_name(manifest.output.labels_file)
        if not labels.is_file():
            raise EdgeMlpError(f"{labels} (named in {manifest_file.name}) is missing; re-convert")
    return _Checked(artifact, manifest_file, manifest, labels)


def _check_deployment(artifact: Path, manifest: Manifest, layout: AppLayout, app_target: tuple[int, ...] | None) -> None:
    """A Core ML package records the OS its ML program needs (`coverage.minimum_deployment_target`,
    e.g. "iOS18" for int4 / palettized weights); refuse it if the app deploys to an older one."""
    needed = manifest.coverage.get("minimum_deployment_target") if isinstance(manifest.coverage, dict) else None
    if app_target is None or layout.deploys_to is None or not isinstance(needed, str):
        return
    version = parse_version(needed, layout.deploys_to)
    if version is None:
        raise EdgeMlpError(f"{artifact.name}: its manifest's minimum_deployment_target {needed!r} is not a "
                           f"{layout.deploys_to} version; re-convert it")
    if version > app_target:
        os_name = layout.deploys_to
        raise EdgeMlpError(
            f"{artifact.name} needs {os_name} {format_version(version)}+ (minimum_deployment_target {needed}) but the "
            f"{layout.name} app deploys to {os_name} {format_version(app_target)} ({layout.marker}); convert a "
            f"precision that runs on {os_name} {format_version(app_target)}, or raise the app's deployment target")


def _copy(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst) if src.is_dir() else shutil.copy2(src, dst)


def _safe(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "image"


def _sample_images(given: list[str] | None, count: int) -> list[tuple[str, Image.Image]]:
    """(file name, image) of the sample images: the user's, or one per class from the eval subset."""
    if given:
        files: list[Path] = []
        for g in given:
            p = Path(g)
            files += sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
        out = []
        for i, f in enumerate(files):
            image = open_image(f, "sample image")
            image = image if image.mode in ("L", "RGB", "RGBA") else image.convert("RGB")
            out.append((f"{i}_{_safe(f.stem)}.png", image))
        return out
    from .demo import EVAL_SUBSET

    data = npz(EVAL_SUBSET)
    picks = [int(np.flatnonzero(data.labels == c)[0]) for c in np.unique(data.labels)][:count]
    return [(f"{i}_{_safe(data.classes[data.labels[k]])}.png", Image.fromarray(data.images[k]))
            for i, k in enumerate(picks)]
