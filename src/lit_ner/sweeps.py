"""Sweeps: a run that fails is recorded and the sweep goes on; after the multirun, one table of every run's overrides,
best val/f1 and test F1, best first."""

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf

from lit_ner.errors import ConfigError, DataError

log = logging.getLogger("lit_ner")


def record_failed_run(run_dir: str, err: Exception) -> None:
    """One bad combination must not end a sweep: log it and leave its status where the summary reads it."""
    if isinstance(err, (DataError, ConfigError)):  # the user's to fix: one line, as outside a sweep
        log.error("run failed, the sweep goes on: %s", err)
    else:
        log.exception("run failed; the sweep goes on")
    failed = {"status": f"failed: {type(err).__name__}: {err}"[:300], "best_val_f1": None, "scores": {}}
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / "metrics.json").write_text(json.dumps(failed, indent=1), encoding="utf-8")


class SweepSummary(HydraCallback):
    """After a multirun: a table of every run's overrides and best val/f1, best first (summary.csv, summary.md)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = []
        for hydra_dir in sorted(sweep_dir.glob("*/.hydra")):
            metrics_file = hydra_dir.parent / "metrics.json"
            # a run killed outright (out of memory, pre-empted) wrote no metrics: list it, do not drop it
            missing = {"status": "no metrics.json (killed?)", "best_val_f1": None, "scores": {}}
            run = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.exists() else missing
            overrides_file = hydra_dir / "overrides.yaml"
            overrides = OmegaConf.load(overrides_file) if overrides_file.exists() else []
            score = run.get("best_val_f1")
            rows.append(
                {
                    "run": metrics_file.parent.name,
                    "overrides": " ".join(str(o) for o in overrides),
                    "best_val_f1": "" if score is None else f"{score:.4f}",
                    "test_f1": f"{run['scores']['test/f1']:.4f}" if "test/f1" in run.get("scores", {}) else "",
                    "status": run.get("status", "ok"),
                }
            )
        sign = -1 if config.get("optimized_mode", "max") == "max" else 1
        rows.sort(key=lambda r: sign * float(r["best_val_f1"]) if r["best_val_f1"] else math.inf)
        with open(sweep_dir / "summary.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["run", "overrides", "best_val_f1", "test_f1", "status"])
            writer.writeheader()
            writer.writerows(rows)
        table = ["| run | overrides | best val/f1 | test f1 | status |", "|---|---|---|---|---|"]
        table += [f"| {r['run']} | {r['overrides']} | {r['best_val_f1']} | {r['test_f1']} | {r['status']} |" for r in rows]
        (sweep_dir / "summary.md").write_text("\n".join(table) + "\n", encoding="utf-8")
        print(f"\nsweep summary ({len(rows)} runs, best first): {sweep_dir / 'summary.md'}\n" + "\n".join(table))
