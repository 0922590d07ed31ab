"""Two CPU processes (trainer=ddp_cpu, gloo) through the real command line: every evaluation sentence is scored
once, the scores of one checkpoint equal those of a single process, and only rank 0 writes the run's outputs.

Run as a script, this file evaluates a checkpoint (validate, then test) with the trainer config given; Lightning
re-runs it once per extra process, as it re-runs `python -m lit_ner.train`."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test here starts two training processes
SIZE = 200  # 20 validation and 20 test sentences: 3 evaluation batches of 8, so both processes get some


def common(tiny_model: Path, tmp: Path) -> list[str]:
    return [
        f"model.model_name_or_path={tiny_model}", f"data.cache_dir={tmp / 'cache'}", f"data.synthetic_size={SIZE}",
        "data.batch_size=16", "data.eval_batch_size=8", "trainer.max_epochs=1", "demo_sentences=[]",
        "trainer.enable_model_summary=false", "callbacks.progress_bar.refresh_rate=0",
    ]  # fmt: skip


def run(command: list[str], tmp: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp, env=env, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def gold_entities(make_cfg, tiny_model: Path, tmp: Path, split: str) -> Counter:
    """Entities per type in the split, counted from the words the cache holds (the metric's `support`)."""
    from hydra.utils import instantiate

    from lit_ner.data.schemes import entity_spans

    datamodule = instantiate(make_cfg(tmp, tiny_model, tmp / "cache", size=SIZE).data, _convert_="all")
    return Counter(kind for tags in datamodule.cached_words()[split]["tags"] for kind, _, _ in entity_spans(tags))


def supports(scores: dict[str, float], stage: str) -> Counter:
    prefix = f"{stage}/support_"
    return Counter({k[len(prefix) :]: int(v) for k, v in scores.items() if k.startswith(prefix)})


@pytest.fixture(scope="module")
def single(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, make_cfg) -> tuple[Path, dict[str, float]]:
    """Trained in one process (in-process: `train` is what the CLI runs) until it finds some entities (val/f1
    ~0.6): its val/ scores are those of last.ckpt, its test/ scores those of best.ckpt."""
    from lit_ner.train import train

    tmp = tmp_path_factory.mktemp("ddp")
    longer = [*common(tiny_model, tmp), "trainer.max_epochs=3", "model.lr=1e-2"]
    return tmp, train(make_cfg(tmp / "single", tiny_model, tmp / "cache", *longer, size=None))["scores"]


def test_two_processes_score_a_checkpoint_as_one_process_does(single, tiny_model: Path, make_cfg) -> None:
    tmp, one = single
    assert 0 < one["val/f1"] < 1 and 0 < one["test/f1"] < 1
    done = run([sys.executable, __file__, str(tmp / "single"), "trainer=ddp_cpu", *common(tiny_model, tmp)], tmp)
    assert "Starting with 2 processes" in done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith("SCORES ")]  # rank 0 alone prints
    two = json.loads(line[len("SCORES ") :])
    for stage in ("val", "test"):
        exact = {k for k in one if k.startswith(f"{stage}/") and k != f"{stage}/loss"}
        assert len(exact) >= 10 and {k: two[k] for k in exact} == {k: one[k] for k in exact}, stage
        # the loss is a float mean (sums and row counts added across processes): equal up to rounding
        assert two[f"{stage}/loss"] == pytest.approx(one[f"{stage}/loss"], rel=1e-5)
        split = "validation" if stage == "val" else "test"
        assert supports(two, stage) == gold_entities(make_cfg, tiny_model, tmp, split)  # no sentence scored twice


def test_two_process_training_writes_its_outputs_once_from_rank_zero(single, tiny_model: Path, make_cfg) -> None:
    tmp, _ = single
    run_dir = tmp / "ddp_run"
    command = [sys.executable, "-m", "lit_ner.train", "trainer=ddp_cpu", *common(tiny_model, tmp)]
    done = run([*command, f"hydra.run.dir={run_dir}"], tmp)
    assert "Starting with 2 processes" in done.stderr
    assert (run_dir / "train_ddp_process_1.log").exists()  # Hydra's log of the second process: it did run
    assert done.stdout.count("lit_ner finished in") == 1  # the summary, metrics.json and export: rank 0 only
    scores = json.loads((run_dir / "metrics.json").read_text())["scores"]
    assert supports(scores, "val") == gold_entities(make_cfg, tiny_model, tmp, "validation")
    assert supports(scores, "test") == gold_entities(make_cfg, tiny_model, tmp, "test")
    assert "Test scores" in (run_dir / "model" / "README.md").read_text()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    writers = {p.name.rsplit(".", 2)[1] for p in (run_dir / "tensorboard").glob("events.out.tfevents.*")}
    assert len(writers) == 1  # every TensorBoard file from one process id


def evaluate(run_dir: str, overrides: list[str]) -> None:
    """Validate the run's last.ckpt and test its best.ckpt (as `train` does) with the composed config's trainer;
    rank 0 prints the scores as JSON."""
    from hydra.utils import instantiate

    from lit_ner.app import compose_config

    cfg = compose_config("train", [*overrides, f"run_dir={run_dir}"])
    datamodule = instantiate(cfg.data, _convert_="all")
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False)
    if trainer.is_global_zero:
        datamodule.prepare_data()
    model = instantiate(cfg.model, labels=datamodule.labels, _convert_="all")
    trainer.validate(model, datamodule=datamodule, ckpt_path=f"{run_dir}/checkpoints/last.ckpt", verbose=False)
    scores = {k: float(v) for k, v in trainer.callback_metrics.items()}
    trainer.test(model, datamodule=datamodule, ckpt_path=f"{run_dir}/checkpoints/best.ckpt", verbose=False)
    scores |= {k: float(v) for k, v in trainer.callback_metrics.items()}
    if trainer.is_global_zero:
        print("SCORES " + json.dumps(scores), flush=True)


if __name__ == "__main__":
    evaluate(sys.argv[1], sys.argv[2:])


STOP_AT_STEP = r"""
import os, sys
from lit_ner.module import NerModule

start = NerModule.on_train_batch_start

def on_train_batch_start(self, batch, batch_idx):
    if self.global_step == int(os.environ["STOP_AT"]):  # every process stops here, as a crash of the job would
        raise RuntimeError(f"stopped at step {self.global_step} in process {self.global_rank}")
    return start(self, batch, batch_idx)

NerModule.on_train_batch_start = on_train_batch_start
from lit_ner.train import main
main()
"""


def test_two_processes_resume_from_a_mid_epoch_checkpoint_exactly(single, tiny_model: Path) -> None:
    """2 processes, last.ckpt every 2 steps; the job dies 3 steps into epoch 1, after a refresh, and is resumed
    (2 processes again): every weight and optimizer state equals the uninterrupted 2-process run's."""
    import torch

    tmp, _ = single
    args = [*common(tiny_model, tmp), "trainer=ddp_cpu", "trainer.max_epochs=2", "checkpoint.every_n_train_steps=2"]
    run([sys.executable, "-m", "lit_ner.train", *args, f"hydra.run.dir={tmp / 'ddp_straight'}"], tmp)
    steps_per_epoch = torch.load(tmp / "ddp_straight" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] // 2
    script = tmp / "stop_at_step.py"
    script.write_text(STOP_AT_STEP)
    env = os.environ | {"HF_HUB_OFFLINE": "1", "STOP_AT": str(steps_per_epoch + 3)}
    stopped = subprocess.run(
        [sys.executable, str(script), *args, f"hydra.run.dir={tmp / 'ddp_resumed'}"],
        capture_output=True, text=True, cwd=tmp, env=env, timeout=400,
    )  # fmt: skip
    assert stopped.returncode != 0 and "stopped at step" in stopped.stderr, stopped.stderr[-3000:]
    saved = torch.load(tmp / "ddp_resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    done = saved["global_step"] - steps_per_epoch  # the batches of epoch 1 each process had trained on
    assert saved["epoch"] == 1 and saved["NerDataModule"] == {"epoch": 1, "batches": done} and 0 < done < steps_per_epoch
    resume = [*args, f"ckpt_path={tmp / 'ddp_resumed'}", f"hydra.run.dir={tmp / 'ddp_resume_log'}"]
    run([sys.executable, "-m", "lit_ner.train", *resume], tmp)
    for name in ("last.ckpt", "best.ckpt"):
        expected = torch.load(tmp / "ddp_straight" / "checkpoints" / name, weights_only=True)
        got = torch.load(tmp / "ddp_resumed" / "checkpoints" / name, weights_only=True)
        assert (got["epoch"], got["global_step"]) == (expected["epoch"], expected["global_step"])
        for key, tensor in expected["state_dict"].items():
            assert torch.equal(tensor, got["state_dict"][key]), f"{name}: {key}"
        for a, b in zip(expected["optimizer_states"][0]["state"].values(), got["optimizer_states"][0]["state"].values()):
            assert all(torch.equal(a[k], b[k]) for k in a), name
