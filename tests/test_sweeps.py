"""The sweep summary: every run's row, and mean ± std over the runs that differ only in their seed; the Optuna sweep
(hparams_search=optuna) optimises the best score the runs return in the direction optimized_mode gives."""

import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from lit_ner.app import CONFIG_MODULE
from lit_ner.sweeps import SweepSummary


def fake_run(
    sweep: Path, name: str, overrides: list[str], val: float | None, test: float | None = None, metric: str = "val/f1"
) -> None:
    """A run folder as a multirun leaves it: .hydra/overrides.yaml and the metrics.json lit_ner.train writes."""
    (sweep / name / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), sweep / name / ".hydra" / "overrides.yaml")
    if val is None:
        metrics = {"status": "failed: ConfigError: bad", "best": None, "scores": {}}
    else:
        metrics = {"best": {"metric": metric, "value": val}, "scores": {"test/f1": test}}
    (sweep / name / "metrics.json").write_text(json.dumps(metrics))


def summarise(sweep: Path, metric: str = "val/f1", mode: str = "max") -> str:
    config = {"hydra": {"sweep": {"dir": str(sweep)}}, "optimized_metric": metric, "optimized_mode": mode}
    SweepSummary().on_multirun_end(OmegaConf.create(config))
    return (sweep / "summary.md").read_text(encoding="utf-8")


def test_runs_that_differ_only_in_seed_are_summarised_as_mean_and_std(tmp_path: Path) -> None:
    low = [(0.61, 0.58), (0.65, 0.60), (0.60, 0.57)]
    high = [(0.71, 0.69), (0.74, 0.70), (0.72, 0.66)]
    for i, (val, test) in enumerate(low):
        fake_run(tmp_path, f"{i}_a", [f"seed={i + 1}", "model.lr=1e-5"], val, test)
    for i, (val, test) in enumerate(high):
        fake_run(tmp_path, f"{i + 3}_a", [f"seed={i + 1}", "model.lr=1e-4"], val, test)
    fake_run(tmp_path, "6_a", ["seed=4", "model.lr=1e-4"], None)  # a failed run: counted, not averaged
    summary = summarise(tmp_path)
    assert summary.count("| ok |") == 6  # the per-run rows stay

    seed_rows = [line for line in summary.splitlines() if line.startswith("| model.lr=")]
    assert [row.split(" | ")[0] for row in seed_rows] == ["| model.lr=1e-4", "| model.lr=1e-5"]  # best mean first
    for row, runs, failed in ((seed_rows[0], high, 1), (seed_rows[1], low, 0)):
        cells = [c.strip() for c in row.strip("|").split("|")]
        vals, tests = [v for v, _ in runs], [t for _, t in runs]
        assert cells[1] == "3" and cells[4] == str(failed)
        assert cells[2] == f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}"
        assert cells[3] == f"{statistics.mean(tests):.4f} ± {statistics.stdev(tests):.4f}"


def test_a_sweep_without_seeds_has_no_seed_table(tmp_path: Path) -> None:
    fake_run(tmp_path, "0_a", ["model.lr=1e-5"], 0.5, 0.4)
    fake_run(tmp_path, "1_a", ["model.lr=1e-4"], 0.7, 0.6)
    assert "besides seed" not in summarise(tmp_path)


def test_the_summary_names_the_metric_it_ranks_by(tmp_path: Path) -> None:
    # optimized_metric=val/loss: the runs' "best" is their lowest validation loss, and the lowest ranks first
    fake_run(tmp_path, "0_a", ["model.lr=1e-5"], 0.9, 0.4, metric="val/loss")
    fake_run(tmp_path, "1_a", ["model.lr=1e-4"], 0.3, 0.6, metric="val/loss")
    summary = summarise(tmp_path, "val/loss", "min")
    assert "| run | overrides | best val/loss | test f1 | status |" in summary and "val/f1" not in summary
    with open(tmp_path / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["run"], r["best val/loss"]) for r in rows] == [("1_a", "0.3000"), ("0_a", "0.9000")]


@pytest.mark.parametrize(
    ("overrides", "direction", "seed"), [([], "maximize", 42), (["optimized_mode=min", "seed=7"], "minimize", 7)]
)
def test_the_optuna_direction_follows_optimized_mode(overrides: list[str], direction: str, seed: int) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="hydra-optuna-sweeper (the optuna extra)")
    GlobalHydra.instance().clear()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        sweeper = compose("train", ["hparams_search=optuna", *overrides], return_hydra_config=True).hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == direction and sweeper.sampler.seed == seed


@pytest.mark.slow
def test_the_readmes_optuna_sweep_picks_the_highest_f1(tiny_model: Path, tmp_path: Path) -> None:
    """The README's line as written (no hydra.sweeper.direction): Optuna's best trial is the one with the highest
    best val/f1, not the lowest (Optuna's own default direction is minimize)."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="hydra-optuna-sweeper (the optuna extra)")
    sweep = tmp_path / "sweep"
    command = [
        sys.executable, "-m", "lit_ner.train", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=3",
        # over two epochs the tiny model ends at F1 0 at the low lrs of this range and above 0 at the high ones
        "model.lr=interval(1e-4,3e-2)", f"model.model_name_or_path={tiny_model}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.synthetic_size=160", "data.batch_size=16", "trainer.max_epochs=2", "demo_sentences=[]", "test=false",
        "export=false", f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Directions: ['maximize']" in done.stdout + done.stderr
    trials = {}  # each trial's lr -> the best val/f1 it returned (its metrics.json)
    for metrics in sweep.glob("*/metrics.json"):
        overrides = OmegaConf.load(metrics.parent / ".hydra" / "overrides.yaml")
        lr = next(float(o.split("=", 1)[1]) for o in overrides if o.startswith("model.lr="))
        trials[lr] = json.loads(metrics.read_text())["best"]["value"]
    assert len(trials) == 3 and max(trials.values()) > min(trials.values()), trials  # else highest = lowest
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.best_value == max(trials.values()), (results, trials)
    assert trials[results.best_params["model.lr"]] == results.best_value, (results, trials)
