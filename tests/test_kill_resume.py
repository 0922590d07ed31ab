"""SIGKILL the real `python -m lit_ner.train` at chosen moments (mid-epoch, halfway through writing a checkpoint,
just after one is renamed into place), resume from the run folder each time: the final weights equal those of an
uninterrupted run, and no kill ever leaves a checkpoint that cannot be loaded."""

import errno
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
from lit_ner.errors import RunError
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

if point in ("step", "batch"):  # mid-epoch: as global step `at` starts, or as batch `at` of epoch 1 starts
    from lit_ner.module import NerModule
    start = NerModule.on_train_batch_start
    def on_train_batch_start(self, batch, batch_idx):
        if (self.global_step == at) if point == "step" else (self.current_epoch, batch_idx) == (1, at):
            wait_for_the_kill()
        return start(self, batch, batch_idx)
    NerModule.on_train_batch_start = on_train_batch_start
else:  # while epoch `at`'s last.ckpt is written: half of it on disk ("write"), or just renamed into place
    save, replace, epochs = torch.save, os.replace, {}
    def slow_save(obj, f, *args, **kwargs):
        name = str(getattr(f, "name", ""))
        epochs[name] = obj.get("epoch") if isinstance(obj, dict) else None
        if point == "write" and ".partial-" in name and name.endswith(".last.ckpt") and epochs[name] == at:
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


def run_to_the_end(args: list[str], tmp: Path, log: Path | None = None) -> None:
    command = [sys.executable, "-m", "lit_ner.train", *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp, env=environment(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    if log is not None:
        log.write_text(done.stdout + done.stderr)


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


@pytest.mark.slow
def test_killed_three_times_then_resumed_matches_an_uninterrupted_run(
    reference: Path, tiny_model: Path, tmp_path: Path
) -> None:
    steps_per_epoch = load(reference / "checkpoints" / "last.ckpt")["global_step"] // EPOCHS
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"

    # 1. mid-epoch: the third batch of epoch 1. The epoch-0 checkpoint stays; resuming replays epoch 1.
    run_and_kill(overrides(tiny_model, tmp_path, run), tmp_path, "step", steps_per_epoch + 2)
    assert load(last)["epoch"] == 0

    # 2. halfway through writing epoch 1's last.ckpt: the old file is untouched, the half-written one is aside (and
    # the next save, by a process that is alive, removes it)
    run_and_kill(overrides(tiny_model, tmp_path, tmp_path / "resume1") + [f"ckpt_path={run}"], tmp_path, "write", 1)
    assert load(last)["epoch"] == 0
    (partial,) = last.parent.glob(".partial-*.last.ckpt")
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
    assert_same_weights(reference, run)


def assert_same_weights(reference: Path, run: Path) -> None:
    assert not list(run.rglob("*partial*"))
    for name in ("last.ckpt", "best.ckpt"):
        expected, got = load(reference / "checkpoints" / name), load(run / "checkpoints" / name)
        assert (got["epoch"], got["global_step"]) == (expected["epoch"], expected["global_step"])
        assert expected["state_dict"].keys() == got["state_dict"].keys()
        for key, tensor in expected["state_dict"].items():
            assert torch.equal(tensor, got["state_dict"][key]), f"{name}: {key}"
        for state in ("optimizer_states", "lr_schedulers"):
            assert_equal_tree(expected[state], got[state], f"{name}: {state}")


def assert_equal_tree(expected: object, got: object, where: str) -> None:
    if isinstance(expected, torch.Tensor):
        assert torch.equal(expected, got), where
    elif isinstance(expected, dict):
        assert expected.keys() == got.keys(), where
        for key in expected:
            assert_equal_tree(expected[key], got[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(expected) == len(got), where
        for i, (a, b) in enumerate(zip(expected, got)):
            assert_equal_tree(a, b, f"{where}[{i}]")
    else:
        assert expected == got, where


@pytest.mark.slow
def test_killed_mid_epoch_resumes_from_the_mid_epoch_checkpoint_at_the_next_batch(
    reference: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """last.ckpt is refreshed every 2 optimizer steps; the kill comes 3 steps into epoch 1, one step after the last
    refresh. The resume trains only the rest of epoch 1, in the uninterrupted run's order: identical weights."""
    steps_per_epoch = load(reference / "checkpoints" / "last.ckpt")["global_step"] // EPOCHS
    run, last = tmp_path / "run", tmp_path / "run" / "checkpoints" / "last.ckpt"
    mid = ["checkpoint.every_n_train_steps=2"]
    kill_at = steps_per_epoch + 3
    run_and_kill(overrides(tiny_model, tmp_path, run) + mid, tmp_path, "step", kill_at)
    saved = load(last)
    assert saved["epoch"] == 1 and saved["global_step"] == (kill_at // 2) * 2  # mid-epoch, the latest refresh
    assert saved["NerDataModule"] == {"epoch": 1, "batches": saved["global_step"] - steps_per_epoch}
    resumed = tmp_path / "resumed.log"
    run_to_the_end(overrides(tiny_model, tmp_path, tmp_path / "resume") + mid + [f"ckpt_path={run}"], tmp_path, resumed)
    assert "resuming from a checkpoint that ended before the epoch ended" not in resumed.read_text()
    assert_same_weights(reference, run)


@pytest.mark.slow
def test_killed_inside_an_accumulation_window_resumes_exactly(tiny_model: Path, tmp_path: Path, make_cfg) -> None:
    """With 2 batches a step, a mid-epoch checkpoint is written only where a step ends: the kill on the second
    batch of a window (its first batch's gradients are in memory only) loses that batch, and the resume redoes it."""
    accumulate = ["trainer.accumulate_grad_batches=2", "checkpoint.every_n_train_steps=1"]
    uninterrupted = tmp_path / "uninterrupted"
    same = [o for o in overrides(tiny_model, tmp_path, uninterrupted) if not o.startswith(("hydra.", "callbacks."))]
    train(make_cfg(uninterrupted, tiny_model, tmp_path / "cache", *same, *accumulate, size=None))
    run, last = tmp_path / "run", tmp_path / "run" / "checkpoints" / "last.ckpt"
    run_and_kill(overrides(tiny_model, tmp_path, run) + accumulate, tmp_path, "batch", 5)  # batches 4 and 5 of epoch 1 make one step: killed between them
    saved = load(last)
    assert saved["epoch"] == 1 and saved["NerDataModule"]["batches"] == 4
    run_to_the_end(overrides(tiny_model, tmp_path, tmp_path / "resume") + accumulate + [f"ckpt_path={run}"], tmp_path)
    assert_same_weights(uninterrupted, run)


# ---- the plugin itself


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_names_the_folder_and_size_and_keeps_the_old_checkpoint(
    code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    path.parent.mkdir()
    atomic_save({"epoch": 1}, path)

    def disk_full(obj: object, f: io.BufferedWriter, *args: object, **kwargs: object) -> None:
        f.write(b"half a checkpoint")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(RunError) as stopped:
        atomic_save({"epoch": 2, "weights": torch.zeros(1_000_000)}, path)
    monkeypatch.undo()
    message = str(stopped.value)
    assert f"the checkpoint last.ckpt in {path.parent}" in message and "needs about 4.0 MB" in message
    assert f"resume with ckpt_path={tmp_path}" in message
    assert load(path) == {"epoch": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_a_disk_that_fills_during_training_stops_the_run_with_its_checkpoints_intact(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_cfg
) -> None:
    """The disk fills while epoch 1's checkpoint is written: the run stops with the one message (the CLI prints
    it as `lit_ner: error:`), epoch 0's checkpoints load, nothing half-written is left and nothing is exported."""
    save = torch.save

    def full_at_epoch_1(obj: object, f: io.BufferedWriter, *args: object, **kwargs: object) -> None:
        if isinstance(obj, dict) and obj.get("epoch") == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_at_epoch_1)
    run = tmp_path / "run"
    with pytest.raises(RunError, match=f"no space left on the disk to write the checkpoint .* in {run / 'checkpoints'}"):
        train(make_cfg(run, tiny_model, tmp_path / "cache"))
    monkeypatch.undo()
    assert load(run / "checkpoints" / "last.ckpt")["epoch"] == 0
    assert load(run / "checkpoints" / "best.ckpt")["epoch"] == 0
    assert not list(run.rglob("*partial*")) and not (run / "model").exists()


def test_the_trainer_writes_atomically_and_loads_weights_only(tiny_model: Path, tmp_path: Path, make_cfg) -> None:
    from hydra.utils import instantiate

    cfg = make_cfg(tmp_path, tiny_model, tmp_path / "cache")
    checkpoint_io = instantiate(cfg.trainer, logger=False).strategy.checkpoint_io
    assert isinstance(checkpoint_io, AtomicCheckpointIO)
    path = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": {}, "code": print}, path)  # a reference to a callable: only full unpickling runs it
    with pytest.raises(Exception, match="Weights only load failed"):
        checkpoint_io.load_checkpoint(path)  # what trainer.fit/test(ckpt_path=...) call


# ---- a full disk elsewhere: the data cache and the export


def test_a_full_disk_while_caching_the_data_names_the_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datasets import Dataset, DatasetDict

    from lit_ner.data import cache

    splits = DatasetDict({"train": Dataset.from_dict({"tokens": [["a", "b"]] * 1000})})

    def disk_full(self: Dataset, cache_file_name: str, **kwargs: object) -> None:  # the write of a split in memory
        Path(cache_file_name).write_bytes(b"half")
        raise OSError("No space left on device")  # as pyarrow raises it: no errno

    monkeypatch.setattr(Dataset, "flatten_indices", disk_full)
    target = tmp_path / "cache" / "0123abcd"
    with pytest.raises(RunError, match=rf"the encoded data cache in {tmp_path / 'cache'} .*data\.cache_dir"):
        cache.write(target, {"words": splits, "encoded": splits}, {})
    assert list((tmp_path / "cache").iterdir()) == []  # no half-written cache left to be read later


def test_a_full_disk_while_exporting_leaves_no_half_export(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoTokenizer, PreTrainedTokenizerBase

    from lit_ner.export import export_model
    from lit_ner.module import NerModule

    module = NerModule(str(tiny_model), ["O", "B-PER", "I-PER"])
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    folder = tmp_path / "run" / "model"
    export_model(module, tokenizer, folder, {}, {}, {})  # an earlier export of the run, replaced by the next one
    (folder / "stale.txt").write_text("from the earlier export")

    def disk_full(self: PreTrainedTokenizerBase, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(PreTrainedTokenizerBase, "save_pretrained", disk_full)
        with pytest.raises(RunError, match=rf"the exported model in {folder.parent} .*ckpt_path={folder.parent}"):
            export_model(module, tokenizer, folder, {}, {}, {})
    assert sorted(p.name for p in folder.parent.iterdir()) == ["model"]  # no model.partial
    export_model(module, tokenizer, folder, {}, {}, {})
    assert (folder / "model.safetensors").exists() and not (folder / "stale.txt").exists()


def test_last_checkpoint_is_refreshed_by_the_clock_inside_the_epoch(tiny_model: Path, tmp_path: Path, make_cfg) -> None:
    """checkpoint.every_n_minutes (10 by default; here a few milliseconds): last.ckpt follows the training inside
    the epoch without a step count; a value that cannot work stops before any work."""
    from lightning.pytorch.callbacks import Callback

    from lit_ner.errors import ConfigError

    class ReadLast(Callback):
        steps: list[int] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            time.sleep(0.01)
            last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
            self.steps.append(load(last)["global_step"] if last.exists() else -1)

    run = tmp_path / "run"
    cfg = make_cfg(run, tiny_model, tmp_path / "cache", "checkpoint.every_n_minutes=0.0001", "trainer.max_epochs=1")
    train(cfg, callbacks=[ReadLast()])
    assert ReadLast.steps == [-1, *range(1, len(ReadLast.steps))]  # before each batch: the step just made
    with pytest.raises(ConfigError, match=r"checkpoint.every_n_minutes=0: give a positive number, or null"):
        train(make_cfg(tmp_path / "bad", tiny_model, tmp_path / "cache", "checkpoint.every_n_minutes=0"))
