"""The arm64 Debian root that edge_mlp.arm64.runner runs artifacts in, under user-mode QEMU.

Built once per cache folder, from Debian's and PyPI's packages only:

- base layer: `debootstrap --arch=arm64 --foreign --variant=minbase --include=python3` of Debian
  bookworm, its second stage run inside the root through binfmt_misc + qemu-user-static (minutes:
  every maintainer script runs emulated);
- python layer, /opt/edge-mlp: the aarch64 cp311 wheels of the host venv's runtime versions
  (ai-edge-litert, onnxruntime, numpy and what they need, pinned to the venv's versions), installed
  from the host by `pip install --target --platform manylinux_*_aarch64` (no pip runs under QEMU);
  the executorch wheel's runtime libraries and headers; et_driver.cpp cross-compiled against
  them with Debian's g++-aarch64-linux-gnu (see that file for why: no torch in the root); and the
  static CPU probe cpuprobe.c (edge_mlp.arm64.cpu). The layer is checked by importing the runtimes
  and loading the driver inside the root before it is renamed into place.

Each layer records what it was built from in a stamp; a second call finds both stamps current
and returns at once. Each is built under a temporary name and renamed into place at the end, so an
interrupted build leaves nothing half-made (leftovers are removed on the next call). Needs root
(debootstrap, chroot, mount, binfmt_misc); the host packages it needs are installed with apt-get
when missing.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .cpu import cpu_identity, possible_processors
from .errors import Arm64Error, Arm64Unavailable

ENV_CACHE = "EDGE_MLP_ARM64_ROOT"
ENV_MIRROR = "EDGE_MLP_ARM64_MIRROR"
DEFAULT_CACHE = Path.home() / ".cache" / "edge-mlp" / "arm64"
SUITE = "bookworm"  # its python3 is 3.11, the host venv's minor version (cp311 wheels)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBIAN_PACKAGES = ("python3",)
PYTHON_VERSION = "3.11"
# Runtimes the in-root script imports (the host venv's versions are pinned); executorch is
# taken apart separately (runtime libraries + headers for the driver, no Python package).
WHEELS = ("ai-edge-litert", "onnxruntime", "numpy")
EXECUTORCH = "executorch"
PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
# Host commands -> the Debian package that provides each.
HOST_TOOLS = {
    "debootstrap": "debootstrap",
    "qemu-aarch64-static": "qemu-user-static",
    "update-binfmts": "binfmt-support",
    "aarch64-linux-gnu-g++": "g++-aarch64-linux-gnu",
    "unshare": "util-linux",
}
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_ENTRY = "qemu-aarch64"
LAYOUT_VERSION = 1  # bump when the layout below changes: both layers rebuild

# Paths inside the root.
OPT = "/opt/edge-mlp"
SITE = f"{OPT}/site"  # PYTHONPATH of the in-root script
ET_LIB = f"{OPT}/executorch/lib"
DRIVER = f"{OPT}/libetd.so"
CPUPROBE = f"{OPT}/cpuprobe"  # static: runs on the host under qemu-aarch64-static (edge_mlp.arm64.runner)
PYTHON = "/usr/bin/python3"
BASE_STAMP = "etc/edge-mlp-arm64-base.json"
PY_STAMP = "stamp.json"  # in OPT

DRIVER_SOURCE = Path(__file__).with_name("et_driver.cpp")
CPUPROBE_SOURCE = Path(__file__).with_name("cpuprobe.c")
# executorch-config.cmake of the wheel: the definitions a consumer compiles with.
DRIVER_DEFINES = ("C10_USING_CUSTOM_GENERATED_MACROS", "ET_EVENT_TRACER_ENABLED", "ET_USE_THREADPOOL")
# What the Python extension links (readelf -d _C*.so), less torch: the quantized kernels are not among them.
DRIVER_LIBS = ("executorch", "executorch_kernels_optimized", "executorch_backend_xnnpack", "executorch_threadpool")

Log = Callable[[str], None]


@dataclass(frozen=True)
class Arm64Root:
    path: Path  # the root folder on the host
    stamp: dict[str, Any] = field(default_factory=dict)  # what both layers were built from
    built: tuple[str, ...] = ()  # layers this call (re)built; () when it was a no-op

    def host(self, inside: str) -> Path:
        """The host path of a path inside the root."""
        return self.path / inside.lstrip("/")

    @property
    def cpuprobe(self) -> Path:
        """The static CPU probe (cpuprobe.c), run on the host: edge_mlp.arm64.cpu.cpu_identity."""
        return self.host(CPUPROBE)

    @property
    def versions(self) -> dict[str, str]:
        return dict(self.stamp.get("python", {}).get("versions", {}))


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """`cache_dir`, else $EDGE_MLP_ARM64_ROOT, else ~/.cache/edge-mlp/arm64."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else DEFAULT_CACHE


def _quiet(_: str) -> None:
    pass


# ----------------------------------------------------------------------------------------- host


def _run(argv: list[str], what: str, log_path: Path | None = None, env: dict[str, str] | None = None,
         timeout: float | None = None) -> str:
    """Run a host command; its output goes to `log_path` (appended) or is returned. A failure is
    one Arm64Error line ending in the tail of the output."""
    if log_path is not None:
        with open(log_path, "a") as log:
            log.write(f"\n$ {' '.join(argv)}\n")
            log.flush()
            proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout)
        output = log_path.read_text(errors="replace")
    else:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
        output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        where = f"; full log: {log_path}" if log_path is not None else ""
        raise Arm64Error(f"{what} failed (exit {proc.returncode}): {_tail(output)}{where}")
    return output


def _tail(text: str, lines: int = 4, chars: int = 400) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-chars:] or "no output"


def _require_root() -> None:
    if os.geteuid() != 0:
        raise Arm64Unavailable("the arm64 root needs root (debootstrap, chroot, mount, binfmt_misc): "
                               "run as root, e.g. in CI or with sudo")


def ensure_host_tools(log: Log = _quiet) -> None:
    """Install the Debian packages of HOST_TOOLS that are missing (apt-get, as root)."""
    _require_root()
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise Arm64Unavailable(f"missing host tools ({', '.join(missing)}) and no apt-get to install them")
    log(f"installing host packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    if subprocess.run(install, capture_output=True, env=env).returncode != 0:
        _run(["apt-get", "update", "-qq"], "apt-get update", env=env)
        _run(install, f"apt-get install {' '.join(missing)}", env=env)
    still = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if still:
        raise Arm64Unavailable(f"apt-get installed {', '.join(missing)} but the tools of {', '.join(still)} are "
                               "still missing")


def ensure_binfmt() -> None:
    """binfmt_misc mounted and qemu-aarch64 registered, enabled and with the F (fix-binary) flag,
    so that aarch64 programs run inside a chroot that has no QEMU of its own."""
    _require_root()
    if not (BINFMT_DIR / "status").exists():
        proc = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not (BINFMT_DIR / "status").exists():
            raise Arm64Unavailable(f"cannot mount binfmt_misc on {BINFMT_DIR} ({_tail(proc.stderr, 1)}): "
                                   "aarch64 programs cannot run here (a container without that privilege?)")
    entry = BINFMT_DIR / BINFMT_ENTRY
    if not entry.exists() or not entry.read_text().startswith("enabled"):
        for action in (["--import", BINFMT_ENTRY], ["--enable", BINFMT_ENTRY]):
            subprocess.run(["update-binfmts", *action], capture_output=True, text=True)
    if not entry.exists() or not entry.read_text().startswith("enabled"):
        raise Arm64Unavailable(f"update-binfmts could not enable {BINFMT_ENTRY} in {BINFMT_DIR}: "
                               "aarch64 programs cannot run here")
    flags = re.search(r"^flags:\s*(\S*)", entry.read_text(), re.M)
    if flags is None or "F" not in flags.group(1):
        raise Arm64Error(f"{entry} is registered without the F flag (another qemu-aarch64 registration?): a "
                         "chroot cannot find its interpreter; run `update-binfmts --disable qemu-aarch64` and retry")


def qemu_version() -> str:
    out = subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True).stdout
    match = re.search(r"version (\S+)", out)
    return match.group(1) if match else "unknown"


def _mirror() -> str:
    """EDGE_MLP_ARM64_MIRROR, else the host's own Debian mirror (deb822 or one-line sources), else
    deb.debian.org."""
    if os.environ.get(ENV_MIRROR):
        return os.environ[ENV_MIRROR]
    texts = [p.read_text(errors="replace") for p in (Path("/etc/apt/sources.list"),
                                                    *sorted(Path("/etc/apt/sources.list.d").glob("*")))
             if p.is_file()]
    for text in texts:
        for uri in re.findall(r"^(?:URIs:|deb)\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M):
            if re.search(r"/debian/?$", uri):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


# --------------------------------------------------------------------------------- mounts, chroot


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    prefix = str(path.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def remove_tree(path: Path) -> None:
    """rm -rf of a (partial) root that never follows a mount: lazily unmount what is mounted below
    it first, and refuse if anything stays mounted."""
    if not path.exists() and not path.is_symlink():
        return
    for point in mounts_under(path):
        subprocess.run(["umount", "-l", point], capture_output=True)
    if mounts_under(path):
        raise Arm64Error(f"{path} still has mounts below it ({', '.join(mounts_under(path))}): unmount them and "
                         "remove it by hand")
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


def chroot_argv(root: Path, argv: list[str], env: dict[str, str], cpuinfo: Path | None = None) -> list[str]:
    """A host command that runs `argv` inside `root` in a private mount namespace, with /proc and
    /sys mounted (and `cpuinfo` bound over /proc/cpuinfo): every mount dies with the namespace,
    so nothing stays mounted when the command ends, fails or is killed."""
    quoted = " ".join(_sh(a) for a in argv)
    setup = [f"mount -t proc proc {_sh(str(root / 'proc'))}",
             f"mount -t sysfs sysfs {_sh(str(root / 'sys'))}"]
    if cpuinfo is not None:
        setup.append(f"mount --bind {_sh(str(cpuinfo))} {_sh(str(root / 'proc/cpuinfo'))}")
    env_args = " ".join(_sh(f"{k}={v}") for k, v in env.items())
    script = " && ".join(setup) + f" && exec env -i {env_args} chroot {_sh(str(root))} {quoted}"
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def _sh(text: str) -> str:
    import shlex

    return shlex.quote(text)


ROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
            "HOME": "/root", "PYTHONDONTWRITEBYTECODE": "1"}


# ---------------------------------------------------------------------------------------- layers


def host_versions() -> dict[str, str]:
    """name -> version of every distribution in this (host) Python environment, as pip constraints:
    the root gets the same versions of whatever it installs. Local labels (torch's +cpu) and
    editable projects are left out."""
    versions: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name, version = dist.metadata["Name"], dist.version
        if not name or "+" in version or name.lower().replace("_", "-") == "edge-mlp":
            continue
        versions[name.lower().replace("_", "-")] = version
    return versions


def _pinned(versions: dict[str, str], name: str) -> str:
    if name not in versions:
        raise Arm64Error(f"{name} is not installed in this Python ({sys.executable}): the arm64 root pins the "
                         "host's runtime versions; run `make setup` first")
    return versions[name]


def base_recipe() -> dict[str, Any]:
    return {"layout": LAYOUT_VERSION, "suite": SUITE, "arch": "arm64", "variant": "minbase",
            "packages": list(DEBIAN_PACKAGES)}


def python_recipe(versions: dict[str, str] | None = None) -> dict[str, Any]:
    versions = host_versions() if versions is None else versions
    pins = {name: _pinned(versions, name) for name in (*WHEELS, EXECUTORCH)}
    return {"layout": LAYOUT_VERSION, "python": PYTHON_VERSION, "platforms": list(PLATFORMS), "pins": pins,
            "driver_sha256": hashlib.sha256(DRIVER_SOURCE.read_bytes()).hexdigest(),
            "cpuprobe_sha256": hashlib.sha256(CPUPROBE_SOURCE.read_bytes()).hexdigest()}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _build_base(cache: Path, log: Log) -> dict[str, Any]:
    """debootstrap into cache/root.partial-*, then rename it to cache/root."""
    final = cache / "root"
    partial = Path(tempfile.mkdtemp(prefix="root.partial-", dir=cache))
    os.chmod(partial, 0o755)
    log_path = cache / "debootstrap.log"
    log_path.write_text("")
    mirror = _mirror()
    try:
        with _stage(log, f"debootstrap first stage ({SUITE} arm64 minbase + {' '.join(DEBIAN_PACKAGES)}, {mirror})"):
            _run(["debootstrap", "--arch=arm64", "--foreign", "--variant=minbase",
                  f"--include={','.join(DEBIAN_PACKAGES)}", SUITE, str(partial), mirror],
                 "debootstrap (first stage)", log_path=log_path)
        with _stage(log, "debootstrap second stage, emulated (the slow part)"):
            ensure_binfmt()
            try:
                _run(["unshare", "--mount", "--propagation", "private", "chroot", str(partial),
                      "/debootstrap/debootstrap", "--second-stage"], "debootstrap (second stage, under QEMU)",
                     log_path=log_path, env={**ROOT_ENV, "LANG": "C"})
            except Arm64Error as err:
                inner = partial / "debootstrap" / "debootstrap.log"
                detail = f" | its own log: {_tail(inner.read_text(errors='replace'))}" if inner.exists() else ""
                raise Arm64Error(f"{err}{detail}") from None
        with _stage(log, "trim"):
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for item in (partial / junk).glob("*"):
                    if item.is_file():
                        item.unlink()
            for sub in ("proc", "sys", "tmp", "opt"):
                (partial / sub).mkdir(exist_ok=True)
            os.chmod(partial / "tmp", 0o1777)
            stamp = {**base_recipe(), "mirror": mirror, "qemu": qemu_version(),
                     "python3": _deb_version(partial, "python3"),
                     "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            (partial / BASE_STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
        remove_tree(final)  # an outdated root (its recipe changed)
        os.rename(partial, final)
        return stamp
    except BaseException:
        remove_tree(partial)
        raise


def _deb_version(root: Path, package: str) -> str:
    status = (root / "var/lib/dpkg/status").read_text(errors="replace")
    match = re.search(rf"^Package: {re.escape(package)}\n(?:[^\n]+\n)*?Version: (\S+)", status, re.M)
    return match.group(1) if match else "unknown"


def _pip(args: list[str], what: str, log_path: Path) -> None:
    platform_args = [arg for p in PLATFORMS for arg in ("--platform", p)]
    argv = [sys.executable, "-m", "pip", *args, *platform_args, "--python-version", PYTHON_VERSION,
            "--implementation", "cp", "--only-binary=:all:", "--disable-pip-version-check", "--no-input"]
    try:
        _run(argv, what, log_path=log_path)
    except Arm64Error as err:
        text = log_path.read_text(errors="replace")
        missing = re.findall(r"No matching distribution found for (\S+)", text)
        if missing:
            raise Arm64Error(f"no aarch64 CPython {PYTHON_VERSION} wheel on PyPI for {missing[-1]} "
                             f"(platforms {', '.join(PLATFORMS)}): the arm64 root cannot run it; full log: "
                             f"{log_path}") from None
        raise err


def _build_python(cache: Path, root: Path, recipe: dict[str, Any], versions: dict[str, str], log: Log) -> dict:
    """/opt/edge-mlp: wheels + executorch runtime + driver, built in /opt/edge-mlp.partial-* and
    renamed into place."""
    opt = root / OPT.lstrip("/")
    partial = Path(tempfile.mkdtemp(prefix="edge-mlp.partial-", dir=opt.parent))
    os.chmod(partial, 0o755)
    log_path = cache / "python-layer.log"
    log_path.write_text("")
    wheels = cache / "wheels"
    wheels.mkdir(exist_ok=True)
    try:
        pins = recipe["pins"]
        with _stage(log, f"aarch64 wheels ({', '.join(f'{n}=={pins[n]}' for n in WHEELS)} + dependencies)"):
            constraints = partial / "constraints.txt"
            constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(versions.items())))
            _pip(["install", "--target", str(partial / "site"), "-c", str(constraints), "--no-compile",
                  *(f"{n}=={pins[n]}" for n in WHEELS)], "pip install of the aarch64 wheels", log_path)
            constraints.unlink()
        with _stage(log, f"executorch=={pins[EXECUTORCH]} runtime (libraries + headers from its aarch64 wheel)"):
            _pip(["download", "--no-deps", "-d", str(wheels), f"{EXECUTORCH}=={pins[EXECUTORCH]}"],
                 "pip download of the executorch aarch64 wheel", log_path)
            found = sorted(wheels.glob(f"{EXECUTORCH}-{pins[EXECUTORCH]}-*aarch64*.whl"))
            if not found:
                raise Arm64Error(f"pip downloaded no aarch64 wheel of {EXECUTORCH}=={pins[EXECUTORCH]} into {wheels}")
            with zipfile.ZipFile(found[0]) as zf:
                members = [m for m in zf.namelist()
                           if m.startswith(("executorch/lib/lib", "executorch/include/")) and not m.endswith("/")]
                for m in members:
                    target = partial / m
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(m))
        with _stage(log, "ExecuTorch driver (et_driver.cpp) and CPU probe (cpuprobe.c), cross-compiled"):
            inc = partial / "executorch" / "include"
            lib = partial / "executorch" / "lib"
            missing = [name for name in DRIVER_LIBS if not (lib / f"lib{name}.so").exists()]
            if missing:
                raise Arm64Error(f"the {EXECUTORCH} aarch64 wheel has no {', '.join(missing)} library: its layout "
                                 "changed; update edge_mlp/arm64/root.py")
            _run(["aarch64-linux-gnu-g++", "-std=c++17", "-O2", "-fPIC", "-shared", "-Wno-deprecated-declarations",
                  *(f"-D{d}" for d in DRIVER_DEFINES), f"-I{inc}",
                  f"-I{inc}/executorch/runtime/core/portable_type/c10", str(DRIVER_SOURCE),
                  "-o", str(partial / Path(DRIVER).name), f"-L{lib}", "-Wl,--no-as-needed",
                  *(f"-l{name}" for name in DRIVER_LIBS), "-Wl,--as-needed", f"-Wl,-rpath,{ET_LIB}"],
                 "cross-compiling the ExecuTorch driver", log_path=log_path)
            _run(["aarch64-linux-gnu-gcc", "-O2", "-static", str(CPUPROBE_SOURCE), "-o",
                  str(partial / Path(CPUPROBE).name)], "cross-compiling the CPU probe", log_path=log_path)
        site = partial / "site"
        installed = {}
        for info in site.glob("*.dist-info"):
            meta = (info / "METADATA").read_text(errors="replace")
            name = re.search(r"^Name: (\S+)", meta, re.M).group(1).lower().replace("_", "-")
            installed[name] = re.search(r"^Version: (\S+)", meta, re.M).group(1)
        installed[EXECUTORCH] = pins[EXECUTORCH]
        stamp = {**recipe, "versions": dict(sorted(installed.items())),
                 "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (partial / PY_STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
        with _stage(log, "check: imports inside the root (emulated)"):
            _smoke(root, partial)
        old = opt.with_name(f"{opt.name}.old")
        remove_tree(old)
        if opt.exists():
            os.rename(opt, old)
        os.rename(partial, opt)
        remove_tree(old)
        return stamp
    except BaseException:
        remove_tree(partial)
        raise


_SMOKE = ("import platform, numpy, onnxruntime, ctypes; from ai_edge_litert.interpreter import Interpreter; "
          "ctypes.CDLL({driver!r}); print(platform.machine(), numpy.__version__, onnxruntime.__version__)")


def _smoke(root: Path, opt_dir: Path) -> None:
    """Import the runtimes and load the driver inside the root, from the not yet renamed layer."""
    inside = "/" + str(opt_dir.relative_to(root))
    cpuinfo = opt_dir / "cpuinfo"
    cpuinfo.write_text(cpu_identity(opt_dir / Path(CPUPROBE).name, "cortex-a76").cpuinfo(possible_processors()))
    code = _SMOKE.format(driver=f"{inside}/{Path(DRIVER).name}")
    env = {**ROOT_ENV, "PYTHONPATH": f"{inside}/site", "QEMU_CPU": "cortex-a76",
           "LD_LIBRARY_PATH": f"{inside}/executorch/lib"}  # the driver's rpath names the final place
    try:
        out = _run(chroot_argv(root, [PYTHON, "-c", code], env, cpuinfo=cpuinfo),
                   "importing the runtimes inside the arm64 root", timeout=600)
    finally:
        cpuinfo.unlink()
    if not out.strip().startswith("aarch64"):
        raise Arm64Error(f"the arm64 root's python reports machine {out.split()[:1]}, not aarch64")


@contextmanager
def _stage(log: Log, what: str) -> Iterator[None]:
    log(f"  {what} ...")
    start = time.monotonic()
    yield
    log(f"  {what}: {time.monotonic() - start:.1f} s")


@contextmanager
def locked(cache: Path, shared: bool = False) -> Iterator[None]:
    """Builders take the cache folder's lock exclusively (pytest-xdist workers, two shells); runs
    (edge_mlp.arm64.runner) and the check that a root is current take it shared: no layer is
    swapped under a running artifact."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_root(cache_dir: str | os.PathLike | None = None, log: Log = _quiet) -> Arm64Root:
    """The arm64 root in `cache_dir` (default: $EDGE_MLP_ARM64_ROOT, else ~/.cache/edge-mlp/arm64)
    at `cache_dir`/root, built if missing or outdated: a no-op (well under a second) when both
    layers' stamps match what this host would build. `log` gets one line per stage with its time.
    Raises Arm64Unavailable when the machine cannot (not root, binfmt_misc), Arm64Error when a
    build step fails."""
    cache = resolve_cache_dir(cache_dir)
    ensure_host_tools(log)
    ensure_binfmt()
    root = cache / "root"
    # A current root is confirmed under the shared lock that runs hold, so a check (each pytest-xdist
    # worker's) does not wait for the other holders' emulated runs to end; only a build locks out.
    with locked(cache, shared=True):
        current = _current_root(root)
    if current is not None:
        return current
    with locked(cache):
        for leftover in cache.glob("root.partial-*"):  # an interrupted build
            remove_tree(leftover)
        for leftover in root.glob("opt/edge-mlp.partial-*"):
            remove_tree(leftover)
        built = []
        base = _read_json(root / BASE_STAMP)
        if not _matches(base, base_recipe()):
            log(f"arm64 root: building the Debian base in {root}")
            base = _build_base(cache, log)
            built.append("base")
        versions = host_versions()
        recipe = python_recipe(versions)
        py = _read_json(root / OPT.lstrip("/") / PY_STAMP)
        if built or not _matches(py, recipe):
            log("arm64 root: installing the runtimes into /opt/edge-mlp")
            py = _build_python(cache, root, recipe, versions, log)
            built.append("python")
        return Arm64Root(path=root, stamp={"base": base, "python": py}, built=tuple(built))


def _matches(stamp: dict | None, recipe: dict[str, Any]) -> bool:
    return stamp is not None and {k: stamp.get(k) for k in recipe} == recipe


def _current_root(root: Path) -> Arm64Root | None:
    """The root as it is, if both layers' stamps match what this host would build."""
    base = _read_json(root / BASE_STAMP)
    py = _read_json(root / OPT.lstrip("/") / PY_STAMP)
    if not (_matches(base, base_recipe()) and _matches(py, python_recipe())):
        return None
    return Arm64Root(path=root, stamp={"base": base, "python": py}, built=())


def root_size_mb(root: Arm64Root) -> float:
    out = subprocess.run(["du", "-sxm", str(root.path)], capture_output=True, text=True).stdout
    return float(out.split()[0]) if out.strip() else float("nan")
