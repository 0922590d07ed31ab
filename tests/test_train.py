"""The training job end to end on the tiny model: configs, resume, TensorBoard, export, sweeps."""

import csv
import json
import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback

from lit_ner.train import train

EXPERIMENTS = sorted(f.name[: -len(".yaml")] for f in resources.files("lit_ner.conf").joinpath("experiment").iterdir())


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_instantiates(experiment: str, tiny_model: Path, tmp_path: Path, make_cfg) -> None:
    own_data = [f"data.path={tmp_path}"] if experiment == "local" else []  # experiment=local: the user's own files
    cfg = make_cfg(tmp_path, tiny_model, tmp_path / "cache", f"experiment={experiment}", *own_data, size=None)
    datamodule = instantiate(cfg.data, _convert_="all")
    assert datamodule.hparams.tokenizer_name_or_path == str(tiny_model)
    model = instantiate(cfg.model, labels=["O", "B-PER", "I-PER"], _convert_="all")
    assert model.model.config.id2label == {0: "O", 1: "B-PER", 2: "I-PER"}
    if experiment == "btc_frozen":  # all layers frozen but the last
        frozen = {n for n, p in model.model.named_parameters() if not p.requires_grad}
        assert any("embeddings" in n for n in frozen) and any("layer.0." in n for n in frozen)
        assert not any("layer.1." in n or "classifier" in n for n in frozen)


class GradientNorms(Callback):
    """The gradient norm of every step before clipping (on_before_optimizer_step runs before it) and after it (a
    post-step hook: the closure, clipping included, runs inside optimizer.step, and the step leaves .grad as is)."""

    def __init__(self) -> None:
        self.before: list[float] = []
        self.after: list[float] = []

    @staticmethod
    def norm(module: torch.nn.Module) -> float:
        return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in module.parameters() if p.grad is not None])))

    def on_train_start(self, trainer, pl_module) -> None:
        self.optimizer = trainer.optimizers[0]
        self.optimizer.register_step_post_hook(lambda *_: self.after.append(self.norm(pl_module)))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.before.append(self.norm(pl_module))


def test_bf16_mixed_precision_trains_with_fused_adamw_and_clipping(tiny_model: Path, tmp_path: Path, make_cfg) -> None:
    # trainer=gpu's precision on CPU: the same Lightning plugin, which will not clip for a fused optimizer itself
    # (the module clips instead); 0.05 is far below the tiny model's gradient norms, so clipping must act
    cfg = make_cfg(tmp_path / "run", tiny_model, tmp_path / "cache", "trainer.precision=bf16-mixed",
                   "trainer.gradient_clip_val=0.05", "trainer.max_epochs=1", "test=false", "export=false", size=48)  # fmt: skip
    norms = GradientNorms()
    train(cfg, callbacks=[norms])
    assert norms.optimizer.defaults["fused"] is True  # torch >= 2.4 fuses AdamW on CPU as on CUDA
    assert len(norms.after) == len(norms.before) > 0 and max(norms.before) > 0.05
    assert max(norms.after) <= 0.05 * (1 + 1e-3), norms.after


@pytest.fixture(scope="module")
def straight_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, make_cfg):
    root = tmp_path_factory.mktemp("straight")
    result = train(make_cfg(root / "run", tiny_model, root / "cache"))
    return root / "run", result


class StopAfterFirstEpoch(Callback):
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.should_stop = True


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def test_resume_matches_an_uninterrupted_run(straight_run, tiny_model: Path, tmp_path: Path, make_cfg) -> None:
    straight_dir, straight = straight_run
    first = make_cfg(tmp_path / "run", tiny_model, tmp_path / "cache", "test=false", "export=false")
    train(first, callbacks=[StopAfterFirstEpoch()])  # the same job, interrupted after its first epoch
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    resumed = train(make_cfg(tmp_path / "elsewhere", tiny_model, tmp_path / "cache", f"ckpt_path={tmp_path / 'run'}"))
    assert resumed["run_dir"] == str(tmp_path / "run")  # a resumed run continues in its own folder
    a, b = final_weights(straight_dir), final_weights(tmp_path / "run")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    for key in ("val/f1", "val/precision", "val/recall", "val/loss"):
        assert resumed["scores"][key] == straight["scores"][key], key


def test_tensorboard_has_the_scalars(straight_run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = straight_run
    tags = set()
    for events in (run_dir / "tensorboard").glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    expected = {"train/loss", "val/loss", "val/precision", "val/recall", "val/f1", "val/f1_AUTHOR", "val/f1_DATE",
                "test/loss", "test/precision", "test/recall", "test/f1", "test/f1_AUTHOR", "test/f1_DATE"}  # fmt: skip
    assert expected <= tags, expected - tags
    assert any(t.startswith("lr-AdamW") for t in tags)


def test_csv_logger_records_the_epochs_and_the_final_scores(tiny_model: Path, tmp_path: Path, make_cfg) -> None:
    cfg = make_cfg(tmp_path / "run", tiny_model, tmp_path / "cache", "logger=tensorboard_csv", "trainer.max_epochs=1",
                   "export=false", size=80)  # fmt: skip
    result = train(cfg)
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("val/f1") for r in rows) and any(r.get("test/f1") for r in rows)
    final = [float(r["hp/test_f1"]) for r in rows if r.get("hp/test_f1")]
    assert final == [pytest.approx(result["scores"]["test/f1"])]
    best = [float(r["hp/val_f1"]) for r in rows if r.get("hp/val_f1")]
    assert best == [pytest.approx(result["best"]["value"])]  # the tested and exported epoch's score
    assert result["best"]["metric"] == "val/f1"  # optimized_metric, which hp/val_f1 is named for
    assert "model.lr" in (tmp_path / "run" / "csv" / "hparams.yaml").read_text()
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def test_metrics_json_names_the_metric_its_best_score_is(tiny_model: Path, tmp_path: Path, make_cfg) -> None:
    # optimized_metric=val/loss: "best" is the lowest validation loss (best.ckpt's epoch), not an F1
    cfg = make_cfg(tmp_path / "run", tiny_model, tmp_path / "cache", "optimized_metric=val/loss", "optimized_mode=min",
                   "logger=csv", "test=false", "export=false", size=80)  # fmt: skip
    result = train(cfg)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["best"] == result["best"]
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    assert len(losses) == 2 and result["best"] == {"metric": "val/loss", "value": pytest.approx(min(losses))}
    assert [float(r["hp/val_loss"]) for r in rows if r.get("hp/val_loss")] == [pytest.approx(min(losses))]
    assert not any(r.get("hp/val_f1") for r in rows)


def test_export_loads_in_transformers_pipeline_with_label_names(straight_run) -> None:
    from transformers import pipeline

    run_dir, _ = straight_run
    folder = run_dir / "model"
    assert (folder / "model.safetensors").exists() and (folder / "README.md").exists()
    config = json.loads((folder / "config.json").read_text())
    assert set(config["id2label"].values()) == {"O", "B-AUTHOR", "I-AUTHOR", "B-DATE", "I-DATE"}
    ner = pipeline("token-classification", model=str(folder), aggregation_strategy="simple", device="cpu")
    ner_raw = pipeline("token-classification", model=str(folder), device="cpu")
    tokens = ner_raw("alan walker wrote the book in 1940")
    assert tokens and all(t["entity"] in {"B-AUTHOR", "I-AUTHOR", "B-DATE", "I-DATE"} for t in tokens)
    assert all(e["entity_group"] in {"AUTHOR", "DATE"} for e in ner("alan walker wrote the book in 1940"))
    assert "Test scores" in (folder / "README.md").read_text()


def test_demo_prints_the_entities_as_written(straight_run, capsys: pytest.CaptureFixture) -> None:
    from lit_ner.train import demo

    run_dir, _ = straight_run
    sentence = "Alan Walker wrote the book in 1940"  # the tiny model's vocabulary is lower case
    demo(str(run_dir / "model"), [sentence])
    found = capsys.readouterr().out.split("->", 1)[1]
    spans = re.findall(r"'([^']*)' (?:AUTHOR|DATE) \(", found)
    # slices of the sentence, capitals kept: the pipeline's own "word" would read 'alan' (uncased vocabulary)
    assert spans and all(span in sentence for span in spans) and "Alan" in "".join(spans), found


def test_resume_with_other_labels_stops_with_the_difference(straight_run, tiny_model: Path, tmp_path: Path, make_cfg) -> None:
    from lit_ner.errors import ConfigError

    run_dir, _ = straight_run
    cfg = make_cfg(tmp_path, tiny_model, tmp_path / "cache", f"ckpt_path={run_dir}", "data.labels=[O,B-AUTHOR,I-AUTHOR,B-DATE,I-DATE,B-X,I-X]")
    with pytest.raises(ConfigError, match="trained with labels"):
        train(cfg)


def test_resume_with_another_recipe_names_the_keys(straight_run, tiny_model: Path, tmp_path: Path, make_cfg) -> None:
    from lit_ner.errors import ConfigError

    run_dir, _ = straight_run
    cfg = make_cfg(tmp_path, tiny_model, tmp_path / "cache", f"ckpt_path={run_dir}", "model.lr=0.5", "data.max_length=64")
    with pytest.raises(ConfigError, match="other settings") as raised:
        train(cfg)
    assert "model.lr=0.5" in str(raised.value) and "data.max_length=64" in str(raised.value)
    assert ".hydra/overrides.yaml" in str(raised.value)


@pytest.mark.parametrize("change", ["trainer.max_epochs=4", "trainer.accumulate_grad_batches=2", "data.batch_size=8"])
def test_resume_with_other_trainer_settings_stops_and_says_why(
    change: str, straight_run, tiny_model: Path, tmp_path: Path, make_cfg
) -> None:
    """"Train some more" by resuming with more epochs would bend the learning-rate schedule laid out at the start:
    lit_ner stops, names the key and says to start a new run from the export."""
    from lit_ner.errors import ConfigError

    run_dir, _ = straight_run
    with pytest.raises(ConfigError, match="other settings") as raised:
        train(make_cfg(tmp_path, tiny_model, tmp_path / "cache", f"ckpt_path={run_dir}", change))
    key, value = change.split("=")
    assert f"{key}={value} (the checkpoint has " in str(raised.value)
    if key.startswith("trainer."):
        assert "schedule was laid out for 16 optimizer steps" in str(raised.value)  # 2 epochs of 8 batches
        assert "model.model_name_or_path=<run>/model" in str(raised.value)


def test_resume_in_another_precision_stops_and_names_the_one_to_resume_with(
    straight_run, tiny_model: Path, tmp_path: Path, make_cfg
) -> None:
    """The default precision depends on the CPU: a run resumed on another machine (or after the default changed)
    must not silently continue in another precision."""
    from lit_ner.errors import ConfigError

    run_dir, _ = straight_run
    then = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["lit_ner_trainer"]["precision"]
    other = "32" if then == "bf16-mixed" else "bf16"  # Lightning's short names too
    with pytest.raises(ConfigError, match="other settings") as raised:
        train(make_cfg(tmp_path, tiny_model, tmp_path / "cache", f"ckpt_path={run_dir}", f"trainer.precision={other}"))
    written = {"32": "32-true", "bf16": "bf16-mixed"}[other]
    assert f"trainer.precision={written} (the checkpoint has {then})" in str(raised.value)
    assert f"add trainer.precision={then}." in str(raised.value)


def test_a_diverging_run_stops_at_the_first_non_finite_step_and_exports_nothing(tiny_model: Path, tmp_path: Path) -> None:
    """A learning rate far too high: the loss turns non-finite within a few steps. The CLI stops there with one
    line naming the step, epoch and learning rate, keeps the checkpoints written before, exports nothing."""
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "lit_ner.train", "model.lr=1e30", "checkpoint.every_n_train_steps=1",
        f"model.model_name_or_path={tiny_model}", f"data.cache_dir={tmp_path / 'cache'}", "data.synthetic_size=120",
        f"hydra.run.dir={run}", "callbacks.progress_bar.refresh_rate=0",
    ]  # fmt: skip
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env)
    assert done.returncode == 2, done.stderr[-3000:]
    [line] = [x for x in done.stderr.splitlines() if x.startswith("lit_ner: error:")]
    pattern = r"the (training loss|gradient norm) is (nan|inf) at step (\d+) \(epoch 0\), learning rate [\d.]+e\+(29|30)"
    found = re.search(pattern, line)
    assert found, line
    assert "Traceback" not in done.stderr and "model.lr" in line
    step = int(found.group(3))
    assert step >= 1  # the first steps were finite, and their checkpoint is what the run keeps
    kept = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert kept["global_step"] == step and all(torch.isfinite(t).all() for t in kept["state_dict"].values())
    assert not (run / "model").exists() and not (run / "metrics.json").exists()


def test_a_non_finite_gradient_stops_the_run_before_the_optimizer_step(tiny_model: Path, tmp_path: Path, make_cfg) -> None:
    from lit_ner.errors import RunError

    class InfiniteGradient(Callback):
        def on_after_backward(self, trainer, pl_module) -> None:
            if trainer.global_step == 3:
                next(p for p in pl_module.parameters() if p.grad is not None).grad[0] = float("inf")

    with pytest.raises(RunError, match=r"the gradient norm is inf at step 3 \(epoch 0\)"):
        train(make_cfg(tmp_path / "run", tiny_model, tmp_path / "cache"), callbacks=[InfiniteGradient()])


@pytest.mark.slow
def test_multirun_sweeps_every_value_and_writes_a_summary(tiny_model: Path, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "lit_ner.train", "-m", "model.lr=1e-3,3e-3", "model.freeze_layers=0,5",
        f"model.model_name_or_path={tiny_model}", f"data.cache_dir={tmp_path / 'cache'}", "data.synthetic_size=120",
    ]  # fmt: skip
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Callback" not in done.stderr, done.stderr[-3000:]  # every Hydra callback ran without an error
    # the two bad combinations are the user's to fix: one line each, no traceback
    output = done.stdout + done.stderr
    assert output.count("run failed, the sweep goes on: model.freeze_layers=5") == 2 and "Traceback" not in output
    [sweep] = (tmp_path / "multirun").iterdir()  # the default sweep folder
    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] != "ok"]
    assert all("model.freeze_layers=0" in r["overrides"] for r in ok)  # the tiny model has 2 layers
    assert len(failed) == 2 and all(r["status"].startswith("failed: ConfigError") for r in failed)
    for r in ok:
        assert (sweep / r["run"] / "checkpoints" / "best.ckpt").exists()
    lrs = {float(o.split("=")[1]) for r in ok for o in r["overrides"].split() if o.startswith("model.lr=")}
    assert lrs == {1e-3, 3e-3}
    scores = [float(r["best val/f1"]) for r in ok]
    assert scores == sorted(scores, reverse=True) and rows[:2] == ok  # best first, failed runs last
    assert (sweep / "summary.md").read_text().count("| ok |") == 2


@pytest.mark.slow
def test_a_sweep_over_experiments_keeps_every_run_in_one_folder(tiny_model: Path, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "lit_ner.train", "-m", "experiment=quickstart,conll2003", "debug=fast",
        f"model.model_name_or_path={tiny_model}", f"data.cache_dir={tmp_path / 'cache'}",
    ]  # fmt: skip
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}  # conll2003 from the Hub: it fails
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [sweep] = (tmp_path / "multirun").iterdir()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0_quickstart", "1_conll2003"]
    with open(sweep / "summary.csv") as f:
        rows = {r["run"]: r["status"] for r in csv.DictReader(f)}
    assert rows["0_quickstart"] == "ok" and rows["1_conll2003"].startswith("failed: DataError"), rows


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["submitit_local", "joblib"])
def test_a_sweep_on_another_launcher_is_summarised_in_one_table(launcher: str, tiny_model: Path, tmp_path: Path) -> None:
    """Trials that run in other processes (submitit's local executor, the path SLURM takes; joblib's workers), one
    of them failing: the summary of the launching process still lists every trial."""
    pytest.importorskip(f"hydra_plugins.hydra_{launcher.split('_')[0]}_launcher")
    command = [
        sys.executable, "-m", "lit_ner.train", "-m", f"hydra/launcher={launcher}", "model.freeze_layers=0,5",
        f"model.model_name_or_path={tiny_model}", f"data.cache_dir={tmp_path / 'cache'}", "data.synthetic_size=120",
        "trainer.max_epochs=1", "demo_sentences=[]",
    ]  # fmt: skip
    if launcher == "joblib":
        command.append("hydra.launcher.n_jobs=2")
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [sweep] = (tmp_path / "multirun").iterdir()
    with open(sweep / "summary.csv") as f:
        rows = {r["overrides"].split()[0]: r for r in csv.DictReader(f)}
    assert rows.keys() == {"model.freeze_layers=0", "model.freeze_layers=5"}
    assert rows["model.freeze_layers=0"]["status"] == "ok" and float(rows["model.freeze_layers=0"]["best val/f1"]) >= 0
    assert rows["model.freeze_layers=5"]["status"].startswith("failed: ConfigError")
    if launcher == "submitit_local":
        assert list((sweep / ".submitit").iterdir())  # submitit's own job folders: the trials ran as its jobs


@pytest.mark.slow
def test_optuna_sweeper_maximises_the_returned_best_score(tiny_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="hydra-optuna-sweeper (the optuna extra)")
    sweep = tmp_path / "sweep"
    command = [
        sys.executable, "-m", "lit_ner.train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2",
        "hydra.sweeper.direction=maximize", "hydra.sweeper.sampler.seed=7", "model.lr=interval(1e-2,5e-2)",
        f"model.model_name_or_path={tiny_model}", f"data.cache_dir={tmp_path / 'cache'}", "data.synthetic_size=400",
        "data.batch_size=16", f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    # what Optuna calls the best value is the best val/f1 each run returned (metrics.json), not some other number
    returned = {r["run"]: json.loads((sweep / r["run"] / "metrics.json").read_text())["best"]["value"] for r in rows}
    assert len(set(returned.values())) == 2, returned  # two different scores: the best one is a real choice
    best_run = max(returned, key=returned.get)
    overrides = dict(o.split("=", 1) for o in next(r for r in rows if r["run"] == best_run)["overrides"].split())
    best = (sweep / "optimization_results.yaml").read_text()
    assert f"best_value: {returned[best_run]}" in best and f"model.lr: {overrides['model.lr']}" in best, best


def test_a_run_that_finds_no_entity_says_so_and_why(tiny_model: Path, tmp_path: Path, make_cfg, capsys, caplog) -> None:
    # an lr far too high for the tiny model: it collapses to "O" everywhere within its 8 steps
    cfg = make_cfg(tmp_path / "run", tiny_model, tmp_path / "cache", "model.lr=5e-2", "trainer.max_epochs=1",
                   "test=false", "export=false")  # fmt: skip
    result = train(cfg)
    assert result["best"] == {"metric": "val/f1", "value": 0.0} and result["scores"]["val/predicted_entities"] == 0
    out = capsys.readouterr().out
    assert "WARNING: best val/f1 is 0.000: the model predicted no entity at all" in out
    assert "too few optimizer steps (8 in all)" in out and "model.lr=0.05" in out and "trainer.max_epochs" in out
    assert any("best val/f1 is 0.000" in r.getMessage() for r in caplog.records)  # in train.log too


def test_a_run_that_learns_has_no_zero_f1_warning(straight_run) -> None:
    from lit_ner.train import zero_f1_advice

    _, result = straight_run
    assert result["best"]["value"] > 0 and zero_f1_advice(None, None, result) is None


def last_epoch(run_dir: Path) -> int:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["epoch"]


def test_early_stopping_stops_a_run_that_no_longer_improves_also_after_resume(
    tiny_model: Path, tmp_path: Path, make_cfg
) -> None:
    # lr 0: val/f1 is the same every epoch, so with patience 1 the second epoch is the last of six
    stopping = ("callbacks=early_stopping", "callbacks.early_stopping.patience=1", "model.lr=0", "trainer.max_epochs=6",
                "test=false", "export=false")  # fmt: skip
    train(make_cfg(tmp_path / "straight", tiny_model, tmp_path / "cache", *stopping))
    assert last_epoch(tmp_path / "straight") == 1
    assert (tmp_path / "straight" / "checkpoints" / "best.ckpt").exists()
    # interrupted after the first epoch and resumed: the counter comes back from the checkpoint, so the run stops
    # at the same epoch (a fresh counter would take the first resumed epoch for an improvement and run one more)
    train(make_cfg(tmp_path / "run", tiny_model, tmp_path / "cache", *stopping), callbacks=[StopAfterFirstEpoch()])
    assert last_epoch(tmp_path / "run") == 0
    train(make_cfg(tmp_path / "elsewhere", tiny_model, tmp_path / "cache", *stopping, f"ckpt_path={tmp_path / 'run'}"))
    assert last_epoch(tmp_path / "run") == 1


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_the_exported_temperature_replays_the_best_epochs_validation(tiny_model: Path, tmp_path: Path, make_cfg,
                                                                    monkeypatch, precision: str) -> None:
    # training fits the export's temperature on the validation logits its best epoch already computed; a fresh
    # reading of the exported model must fit the same one. Under bf16 mixed precision too: validation reads the
    # float32 weights without autocast, as the exported model is read
    import lit_ner.runners
    from transformers import AutoModelForTokenClassification

    from lit_ner.calibration import validation_temperature
    from lit_ner.heads import build_head

    replays = []

    class Spy(lit_ner.runners.Replay):
        def __init__(self, recorded, fallback) -> None:
            super().__init__(recorded, fallback)
            self.pairs = list(recorded)
            replays.append(self)

    monkeypatch.setattr(lit_ner.runners, "Replay", Spy)
    cfg = make_cfg(tmp_path / "run", tiny_model, tmp_path / "cache", "trainer.max_epochs=2",
                   f"trainer.precision={precision}")
    result = train(cfg)
    assert replays[0].replayed > 0 and len(replays[0].recorded) == replays[0].replayed  # no batch read again
    export = Path(result["export"])
    stored = json.loads((export / "config.json").read_text())["lit_ner_calibration"]["temperature"]
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("validate")
    model = AutoModelForTokenClassification.from_pretrained(export)
    head = build_head(None, datamodule.labels)
    run = lit_ner.runners.TorchRunner(head.graph(model), head.outputs)  # the reading of evaluate, predict and the service
    for inputs, outputs in replays[0].pairs:
        np.testing.assert_allclose(outputs["logits"], run(inputs)["logits"], atol=1e-5)
    assert validation_temperature(model, head, datamodule) == pytest.approx(stored, rel=1e-5)
    assert replays[-1].replayed == 0  # that reading ran the model


def test_the_default_precision_is_bf16_mixed_only_on_a_cpu_with_bf16_in_hardware(monkeypatch) -> None:
    from lit_ner.app import train_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    cases = [(True, False, "bf16-mixed"), (False, True, "bf16-mixed"), (False, False, "32-true")]
    for avx512_bf16, amx, expected in cases:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda value=avx512_bf16: value)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda value=amx: value)
        assert train_precision("cpu") == train_precision("auto") == expected
        assert train_precision("gpu") == "32-true"  # trainer=gpu sets its own
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert train_precision("auto") == "32-true"  # auto picks the GPU, whose precision is trainer=gpu's to choose
