"""Sweeps: a run that fails is recorded and the sweep goes on; after the multirun, one table of every run's overrides,
best optimized_metric (val/f1 unless set) and test F1, best first, and one of mean ± std over the runs that differ
only in their seed."""

import csv
import json
import logging
import math
import re
import statistics
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf

from lit_ner import files
from lit_ner.errors import REPORTED

log = logging.getLogger("lit_ner")


def record_failed_run(run_dir: str, err: Exception) -> None:
    """One bad combination must not end a sweep: log it and leave its status where the summary reads it."""
    if isinstance(err, REPORTED):  # the user's to fix: one line, as outside a sweep
        log.error("run failed, the sweep goes on: %s", err)
    else:
        log.exception("run failed; the sweep goes on")
    failed = {"status": f"failed: {type(err).__name__}: {err}"[:300], "best": None, "scores": {}}
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    files.write_text(Path(run_dir) / "metrics.json", json.dumps(failed, indent=1))


class SweepSummary(HydraCallback):
    """After a multirun: a table of every run's overrides and best optimized_metric, best first (summary.csv,
    summary.md)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        best = f"best {config.optimized_metric}"  # the column every run's metrics.json "best" value fills
        rows = []
        for hydra_dir in sorted(sweep_dir.glob("*/.hydra")):
            metrics_file = hydra_dir.parent / "metrics.json"
            # a run killed outright (out of memory, pre-empted) wrote no metrics: list it, do not drop it
            missing = {"status": "no metrics.json (killed?)", "best": None, "scores": {}}
            run = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.exists() else missing
            overrides_file = hydra_dir / "overrides.yaml"
            overrides = OmegaConf.load(overrides_file) if overrides_file.exists() else []
            score = (run.get("best") or {}).get("value")
            rows.append(
                {
                    "run": metrics_file.parent.name,
                    "overrides": " ".join(str(o) for o in overrides),
                    "settings": " ".join(str(o) for o in overrides if not SEED.match(str(o))),
                    best: "" if score is None else f"{score:.4f}",
                    "test_f1": f"{run['scores']['test/f1']:.4f}" if "test/f1" in run.get("scores", {}) else "",
                    "status": run.get("status", "ok"),
                    "val": score,
                    "test": run.get("scores", {}).get("test/f1"),
                }
            )
        sign = -1 if config.optimized_mode == "max" else 1
        rows.sort(key=lambda r: math.inf if r["val"] is None else sign * r["val"])
        with files.writing(sweep_dir / "summary.csv", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["run", "overrides", best, "test_f1", "status"], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        table = [f"| run | overrides | {best} | test f1 | status |", "|---|---|---|---|---|"]
        table += [f"| {r['run']} | {r['overrides']} | {r[best]} | {r['test_f1']} | {r['status']} |" for r in rows]
        seeds = seed_table(rows, best, sign) if any(r["settings"] != r["overrides"] for r in rows) else []
        if seeds:
            table += ["", "mean ± sample std over the runs that differ only in `seed` (n: runs with a score):", "", *seeds]
        files.write_text(sweep_dir / "summary.md", "\n".join(table) + "\n")
        print(f"\nsweep summary ({len(rows)} runs, best first): {sweep_dir / 'summary.md'}\n" + "\n".join(table))


# a seed override as Hydra records it: seed=3, +seed=3, ++seed=3
SEED = re.compile(r"^\+{0,2}seed=")


def mean_std(values: list[float]) -> str:
    """"0.8312 ± 0.0041" (sample std, as published seed averages report it); one value has no spread."""
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def seed_table(rows: list[dict[str, Any]], best: str, sign: int = -1) -> list[str]:
    """Markdown rows: one per group of runs whose overrides are equal once `seed=` is left out, best mean first
    (`sign` -1: higher is better); `best` heads the column of the runs' best optimized_metric."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["settings"], []).append(row)
    stats = []
    for settings, runs in groups.items():
        val = [r["val"] for r in runs if r["val"] is not None]
        test = [r["test"] for r in runs if r["test"] is not None]
        failed = len(runs) - len(val)
        stats.append((sign * statistics.mean(val) if val else math.inf, settings or "(none)", len(val), failed, val, test))
    stats.sort(key=lambda s: s[0])
    table = [f"| overrides besides seed | n | {best} | test f1 | runs without a score |", "|---|---:|---|---|---:|"]
    table += [f"| {s} | {n} | {mean_std(val)} | {mean_std(test)} | {failed} |" for _, s, n, failed, val, test in stats]
    return table
