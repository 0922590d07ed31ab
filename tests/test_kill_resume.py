"""SIGKILL the real `python -m lit_ner.train` at chosen moments (mid-epoch, halfway through writing a checkpoint,
just after one is renamed into place), resume from the run folder each time: the final weights equal those of an
uninterrupted run, and no kill ever leaves a checkpoint that cannot be loaded."""

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lit_ner.checkpointing import AtomicCheckpointIO, atomic_save
from lit_ner.train import train

EPOCHS = 3
# Run inside the training process before lit_ner.train.main: stop (sleep until killed) at KILL_POINT, after
# writing KILL_MARKER so the test knows the moment has come. Nothing else about the run changes.
HOOKS = r"""
import io, os, sys, time
from pathlib import Path
import torch

point, at, marker = os.environ["KILL_POINT"], int(os.environ["KILL_AT"]), Path(os.environ["KILL_MARKER"])

def wait_for_the_kill():
    marker.write_text(point)
    time.sleep(600)

if point == "step":  # mid-epoch, as global step `at` starts
    from lit_ner.module import NerModule
    start = NerModule.on_train_batch_start
    def on_train_batch_start(self, batch, batch_idx):
        if self.global_step == at:
            wait_for_the_kill()
        return start(self, batch, batch_idx)
    NerModule.on_train_batch_start = on_train_batch_start
else:  # while epoch `at`'s last.ckpt is written: half of it on disk ("write"), or just renamed into place
    save, replace, epochs = torch.save, os.replace, {}
    def slow_save(obj, f, *args, **kwargs):
        name = str(getattr(f, "name", ""))
        epochs[name] = obj.get("epoch") if isinstance(obj, dict) else None
        if point == "write" and name.endswith("last.ckpt.partial") and epochs[name] == at:
            buffer = io.BytesIO()
            save(obj, buffer, *args, **kwargs)
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            f.flush()
            os.fsync(f.fileno())
            wait_for_the_kill()
        return save(obj, f, *args, **kwargs)
    def replace_then_stop(src, dst, *args, **kwargs):
        replace(src, dst, *args, **kwargs)
        if point == "renamed" and str(dst).endswith("last.ckpt") and epochs.get(str(src)) == at:
            wait_for_the_kill()
    torch.save, os.replace = slow_save, replace_then_stop

from lit_ner.train import main
main()
"""


def overrides(tiny_model: Path, tmp: Path, hydra_dir: Path) -> list[str]:
    return [
        f"model.model_name_or_path={tiny_model}", f"data.cache_dir={tmp / 'cache'}", "data.synthetic_size=120",
        "data.batch_size=16", f"trainer.max_epochs={EPOCHS}", "demo_sentences=[]",
        "callbacks.progress_bar.refresh_rate=0", "trainer.enable_model_summary=false", f"hydra.run.dir={hydra_dir}",
    ]  # fmt: skip


def environment() -> dict[str, str]:
    return os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def run_to_the_end(args: list[str], tmp: Path) -> None:
    command = [sys.executable, "-m", "lit_ner.train", *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp, env=environment(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def run_and_kill(args: list[str], tmp: Path, point: str, at: int) -> None:
    """Start the CLI with HOOKS, wait until it reaches `point`, SIGKILL it there."""
    marker = tmp / f"reached-{point}-{at}"
    log = tmp / f"{point}-{at}.log"
    env = environment() | {"KILL_POINT": point, "KILL_AT": str(at), "KILL_MARKER": str(marker)}
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", HOOKS, *args], stdout=output, stderr=subprocess.STDOUT, cwd=tmp, env=env
        )
        deadline = time.monotonic() + 300
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert marker.exists(), f"the run never reached {point} {at}:\n{log.read_text()[-3000:]}"
    assert process.returncode == -signal.SIGKILL


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def reference(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, make_cfg) -> Path:
    """The same job uninterrupted, run in-process (train(cfg) is what the CLI calls; this saves a start-up)."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    cli_only = ("hydra.run.dir=", "callbacks.progress_bar")
    same = [o for o in overrides(tiny_model, tmp, tmp / "run") if not o.startswith(cli_only)]
    train(make_cfg(tmp / "run", tiny_model, tmp / "cache", *same, size=None))
    return tmp / "run"


def test_killed_three_times_then_resumed_matches_an_uninterrupted_run(
    reference: Path, tiny_model: Path, tmp_path: Path
) -> None:
    steps_per_epoch = load(reference / "checkpoints" / "last.ckpt")["global_step"] // EPOCHS
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"

    # 1. mid-epoch: the third batch of epoch 1. The epoch-0 checkpoint stays; resuming replays epoch 1.
    run_and_kill(overrides(tiny_model, tmp_path, run), tmp_path, "step", steps_per_epoch + 2)
    assert load(last)["epoch"] == 0

    # 2. halfway through writing epoch 1's last.ckpt: the old file is untouched, the half-written one is aside
    run_and_kill(overrides(tiny_model, tmp_path, tmp_path / "resume1") + [f"ckpt_path={run}"], tmp_path, "write", 1)
    assert load(last)["epoch"] == 0
    partial = last.with_name("last.ckpt.partial")
    assert 0 < partial.stat().st_size < last.stat().st_size * 0.6
    with pytest.raises(Exception):
        load(partial)

    # 3. just after epoch 2's last.ckpt replaced the old one: the new file is complete; test and export never ran
    run_and_kill(overrides(tiny_model, tmp_path, tmp_path / "resume2") + [f"ckpt_path={run}"], tmp_path, "renamed", 2)
    assert load(last)["epoch"] == 2
    assert not (run / "metrics.json").exists()

    # 4. the last resume has no epoch left: it tests the best checkpoint and exports
    run_to_the_end(overrides(tiny_model, tmp_path, tmp_path / "resume3") + [f"ckpt_path={run}"], tmp_path)
    assert (run / "metrics.json").exists() and (run / "model" / "model.safetensors").exists()
    assert not list(run.rglob("*.partial"))
    for name in ("last.ckpt", "best.ckpt"):
        expected, got = load(reference / "checkpoints" / name), load(run / "checkpoints" / name)
        assert (got["epoch"], got["global_step"]) == (expected["epoch"], expected["global_step"])
        assert expected["state_dict"].keys() == got["state_dict"].keys()
        for key, tensor in expected["state_dict"].items():
            assert torch.equal(tensor, got["state_dict"][key]), f"{name}: {key}"


# ---- the plugin itself


def test_a_failed_write_keeps_the_old_checkpoint_and_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.ckpt"
    atomic_save({"epoch": 1}, path)

    def disk_full(obj: object, f: io.BufferedWriter, *args: object, **kwargs: object) -> None:
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic_save({"epoch": 2}, path)
    monkeypatch.undo()
    assert load(path) == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_the_trainer_writes_atomically_and_loads_weights_only(tiny_model: Path, tmp_path: Path, make_cfg) -> None:
    from hydra.utils import instantiate

    cfg = make_cfg(tmp_path, tiny_model, tmp_path / "cache")
    checkpoint_io = instantiate(cfg.trainer, logger=False).strategy.checkpoint_io
    assert isinstance(checkpoint_io, AtomicCheckpointIO)
    path = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": {}, "code": print}, path)  # a reference to a callable: only full unpickling runs it
    with pytest.raises(Exception, match="Weights only load failed"):
        checkpoint_io.load_checkpoint(path)  # what trainer.fit/test(ckpt_path=...) call
