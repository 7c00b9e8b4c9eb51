"""`--shift-lowering auto`: the exact shift lowering measured fastest, per target, precision and family.

The evidence is every `edge-mlp bench --shift-ablation` report committed under `benchmarks/results/`
(`benchmarks/run_all.py` writes one, bench.json). `make shift-choice` distils them into
`edge_mlp/assets/shift_choice.json`, which ships with the package (`benchmarks/` does not) and
which `convert` reads; a test keeps the two in step, so a new ablation run changes what `auto`
picks in the same commit. Where no run measured a target / precision / family (Core ML cannot be
timed on this host), the converter's declared `preferred_lowering` applies, and the manifest says so.

    python -m edge_mlp.shift_choice   # rewrite the asset from benchmarks/results/
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Iterable

from .options import ShiftLowering

CHOICE_FILE = Path(__file__).parent / "assets" / "shift_choice.json"
RESULTS_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


@dataclass(frozen=True)
class Choice:
    lowering: ShiftLowering
    reason: str

    def as_tuple(self) -> tuple[ShiftLowering, str]:
        return self.lowering, self.reason


def _median(row: dict[str, Any]) -> float:
    return float(row["latency"]["median_ms"])


def choices_from_reports(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """{target: {precision: {family: {"lowering", "reason"}}}} from bench reports keyed by file name.

    Per (target, precision, family): the lowering with the smallest geometric mean, over the
    family's models measured, of its median over that model's fastest lowering."""
    from .bench.schema import BACKENDS
    from .models import get_spec

    target_of = {backend: target for target, backend in BACKENDS.items()}
    exact = {str(v) for v in ShiftLowering.exact()}
    # (target, precision, family) -> model -> lowering -> (median, file, settings)
    table: dict[tuple[str, str, str], dict[str, dict[str, tuple[float, str, dict]]]] = {}
    for file, data in sorted(reports.items()):
        settings = {**data.get("settings", {}), "threads": data["machine"]["threads"]}
        for row in data["results"]:
            target = target_of.get(row["backend"])
            if target in (None, "eager") or row["shift_lowering"] not in exact:
                continue
            key = (target, row["precision"], get_spec(row["model"]).family)
            table.setdefault(key, {}).setdefault(row["model"], {})[row["shift_lowering"]] = (_median(row), file, settings)
    out: dict[str, Any] = {}
    for (target, precision, family), models in sorted(table.items()):
        lowerings = set.intersection(*(set(m) for m in models.values()))
        if len(lowerings) < 2:
            continue  # nothing to choose between

        def score(lowering: str) -> float:
            return math.exp(sum(math.log(m[lowering][0] / min(m[low][0] for low in lowerings)) for m in models.values())
                            / len(models))

        ranked = sorted(lowerings, key=score)
        evidence = []
        for model, measured in sorted(models.items()):
            _, file, settings = measured[ranked[0]]
            times = ", ".join(f"{low} {measured[low][0]:.1f} ms" for low in ranked)
            evidence.append(f"{model} {precision} at {settings.get('img_size')} px, {settings['threads']} threads: "
                            f"{times} (benchmarks/results/{file})")
        reason = f"{ranked[0]}: fastest measured by edge-mlp bench --shift-ablation; " + "; ".join(evidence)
        out.setdefault(target, {}).setdefault(precision, {})[family] = {"lowering": ranked[0], "reason": reason}
    return out


def ablation_reports(paths: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """The bench reports among `paths` that timed a shift ablation, keyed by file name."""
    reports = {}
    for path in sorted(paths):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("settings", {}).get("shift_ablation") and "results" in data:
            reports[path.name] = data
    return reports


def committed_choices() -> dict[str, Any]:
    """What the committed ablation results say (needs the repository's benchmarks/ folder)."""
    reports = ablation_reports(RESULTS_DIR.glob("*.json"))
    return {"generated_from": [f"benchmarks/results/{name}" for name in reports],
            "choices": choices_from_reports(reports)}


@cache
def _recorded() -> dict[str, Any]:
    try:
        return json.loads(CHOICE_FILE.read_text())["choices"]
    except (OSError, ValueError, KeyError):
        return {}


def measured_choice(target: str, precision: str, family: str) -> Choice | None:
    """The recorded choice for this family, else one measured on another family at the same target
    and precision (the reason names the models measured), else None."""
    by_family = _recorded().get(target, {}).get(str(precision), {})
    entry = by_family.get(family)
    if entry is None and by_family:
        other = sorted(by_family)[0]
        entry = dict(by_family[other])
        entry["reason"] = f"{entry['reason']} [measured on {other}, not on {family}]"
    return Choice(ShiftLowering(entry["lowering"]), entry["reason"]) if entry else None


def main() -> None:
    CHOICE_FILE.write_text(json.dumps(committed_choices(), indent=2) + "\n")
    print(f"wrote {CHOICE_FILE}")


if __name__ == "__main__":
    main()
