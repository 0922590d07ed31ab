"""lit_ner.resume.ExactResume on its own: when it rewrites last.ckpt inside an epoch, what the DataModule skips, and
a checkpoint that does not say where it stopped. The end-to-end resumes (SIGKILL, accumulation, two processes) are
tests/test_kill_resume.py and tests/test_ddp.py."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lit_ner.data.batching import BucketBatchSampler, SeededPermutation
from lit_ner.errors import ConfigError
from lit_ner.resume import POSITION, ExactResume
from lit_ner.train import train


def writes_at(resume: ExactResume, batches: int, accumulate: int = 1) -> list[int]:
    """The batch indices of one epoch after which last.ckpt is rewritten (global_step as Lightning counts it)."""
    due = []
    for batch_idx in range(batches):
        trainer = SimpleNamespace(
            accumulate_grad_batches=accumulate, num_training_batches=batches, global_step=(batch_idx + 1) // accumulate,
            fast_dev_run=False,
        )  # fmt: skip
        if resume.due(trainer, batch_idx):
            due.append(batch_idx)
    return due


def test_last_checkpoint_is_rewritten_where_a_step_ends_and_never_at_the_epoch_end(tmp_path: Path) -> None:
    every_two = ExactResume(str(tmp_path / "last.ckpt"), every_n_train_steps=2)
    assert writes_at(every_two, 9) == [1, 3, 5, 7]  # not after batch 8, the last: the epoch-end checkpoint follows
    # two batches a step: after the second of each window only (the first one's gradients are in memory only)
    assert writes_at(ExactResume(str(tmp_path / "last.ckpt"), every_n_train_steps=1), 8, accumulate=2) == [1, 3, 5]
    assert writes_at(ExactResume(str(tmp_path / "last.ckpt")), 9) == []  # no trigger: epoch ends only
    with pytest.raises(ConfigError, match=r"checkpoint.every_n_train_steps=0: give a positive number"):
        ExactResume(str(tmp_path / "last.ckpt"), every_n_train_steps=0)


def test_the_skipped_batches_are_the_first_of_that_epoch_only() -> None:
    lengths = list(range(1, 100))
    epoch = {"now": 1}
    skip = {1: 3}
    sampler = BucketBatchSampler(
        SeededPermutation(len(lengths), 5, lambda: epoch["now"]), lengths, 8, skip_of=lambda e: skip.get(e, 0)
    )
    resumed = list(sampler)
    skip.clear()
    whole = list(sampler)
    assert resumed == whole[3:] and len(sampler) == len(whole)  # Lightning still counts the whole epoch
    epoch["now"] = 2
    skip[1] = 3
    assert len(list(sampler)) == len(whole)  # the next epoch is whole


def test_a_checkpoint_without_its_position_stops_the_resume(tiny_model: Path, tmp_path: Path, make_cfg) -> None:
    """A checkpoint that does not say how far into its epoch it was written cannot be continued exactly: the resume
    stops and says so, rather than start the epoch again."""
    one_epoch = ("trainer.max_epochs=1", "test=false", "export=false")
    train(make_cfg(tmp_path / "run", tiny_model, tmp_path / "cache", *one_epoch, size=48))
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved[POSITION]["epoch"] == 0 and saved[POSITION]["batches"] > 0
    del saved[POSITION]
    torch.save(saved, tmp_path / "nowhere.ckpt")
    with pytest.raises(ConfigError, match="does not say where in epoch 0 it was written"):
        train(make_cfg(tmp_path / "again", tiny_model, tmp_path / "cache", *one_epoch,
                       f"ckpt_path={tmp_path / 'nowhere.ckpt'}", size=48))  # fmt: skip
