"""`python -m edge_mlp.arm64` (`make arm64`): build the arm64 root, or find it current, and say so."""

import sys
import time

from edge_mlp.errors import EdgeMlpError

from .root import prepare_root, root_size_mb


def main() -> int:
    start = time.monotonic()
    try:
        root = prepare_root(log=lambda line: print(line, flush=True))
    except EdgeMlpError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted: the partial build was removed; the next `make arm64` starts it again", file=sys.stderr)
        return 130
    what = f"built {' + '.join(root.built)}" if root.built else "already current"
    versions = ", ".join(f"{k} {v}" for k, v in root.versions.items()
                         if k in ("ai-edge-litert", "onnxruntime", "executorch", "numpy"))
    print(f"arm64 root {root.path}: {what} in {time.monotonic() - start:.1f} s, {root_size_mb(root):.0f} MB ({versions})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
