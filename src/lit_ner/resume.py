"""Exact resume: where training is (an epoch and how many of its batches it trained on), written into every
checkpoint and into last.ckpt inside the epoch too, and how a resumed run continues as the uninterrupted run would."""

import random
import time
import warnings
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

from lit_ner.errors import ConfigError

# The checkpoint entry that holds the position, {"epoch": e, "batches": n}. It bears the DataModule's name because
# Lightning filed the position there while the DataModule kept it: checkpoints written then resume exactly too.
POSITION = "NerDataModule"


class ExactResume(Callback):
    """A resumed run trains on exactly what an uninterrupted run would have, and draws the same random numbers:

    - every checkpoint records the epoch and the batches of it trained on; on resume the DataModule skips those
      (`NerDataModule.skip`; its batch order depends on (seed, epoch) alone);
    - before each training batch, Python's, NumPy's and torch's generators are reseeded from (model.seed, epoch,
      batch, rank), so dropout draws the same masks whatever consumed random numbers before (model init, the
      restore, sanity checks); by batch, not optimizer step, so an accumulated step's micro-batches draw different
      masks;
    - `checkpoint` (last.ckpt) is rewritten inside the epoch every `every_n_minutes` and/or `every_n_train_steps`
      optimizer steps, so a crash loses minutes, not an epoch. Lightning's ModelCheckpoint takes one trigger
      (epochs, steps or time); the epoch-end last.ckpt stays with one, and these two triggers live here.
    """

    def __init__(
        self, checkpoint: str, every_n_minutes: float | None = None, every_n_train_steps: int | None = None
    ) -> None:
        for key, value in (("every_n_minutes", every_n_minutes), ("every_n_train_steps", every_n_train_steps)):
            if value is not None and value <= 0:
                raise ConfigError(f"checkpoint.{key}={value}: give a positive number, or null to turn it off.")
        self.checkpoint = checkpoint
        self.every_seconds = every_n_minutes * 60 if every_n_minutes else None
        self.every_steps = every_n_train_steps or 0
        self.since = time.monotonic()
        self.batches = 0  # batches of the current epoch trained on
        self.quiet: warnings.catch_warnings | None = None

    # ---- where training is
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.batches = 0  # not called when a run resumes inside an epoch: on_load_checkpoint sets the count then

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[POSITION] = {"epoch": trainer.current_epoch, "batches": self.batches}

    # ---- how it continues
    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn != TrainerFn.FITTING:  # validate or test a checkpoint: nothing to continue
            return
        position = checkpoint.get(POSITION)
        if position is None:
            raise ConfigError(
                f"the checkpoint does not say where in epoch {checkpoint.get('epoch')} it was written (no "
                f"'{POSITION}' entry: it was not written by a lit_ner training run), so a resume cannot continue "
                "it exactly. Resume from a run folder's checkpoints/last.ckpt, or start a new run from its weights."
            )
        skip = getattr(trainer.datamodule, "skip", None)
        if skip is None:
            raise ConfigError("a resume needs a DataModule that can skip the batches trained on (NerDataModule)")
        skip(position["epoch"], position["batches"])
        self.batches = position["batches"]
        # Lightning warns that a resume inside an epoch replays it unless the train loader is "stateful": one with a
        # state of its own, filed apart from this position. This loader starts after the batches trained on, so the
        # warning is silenced until the first batch, inside a catch_warnings that then restores every filter.
        self.quiet = warnings.catch_warnings()
        self.quiet.__enter__()
        warnings.filterwarnings("ignore", "You're resuming from a checkpoint that ended before the epoch ended")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.since = time.monotonic()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.speak()
        # batch_idx counts from the epoch's start on a resumed run too: Lightning restores its batch progress
        seed = ((pl_module.hparams.seed * 1_000_003 + trainer.current_epoch) * 1_000_003 + batch_idx) * 101
        seed = (seed + trainer.global_rank) % 2**32
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.batches = batch_idx + 1
        if self.due(trainer, batch_idx):
            trainer.save_checkpoint(self.checkpoint, weights_only=False)  # every process calls it; rank zero writes
            self.since = time.monotonic()

    def due(self, trainer: L.Trainer, batch_idx: int) -> bool:
        """Write last.ckpt inside the epoch now? Only where an optimizer step has just ended (accumulated gradients
        are not saved), and never at the epoch's last batch: the epoch-end checkpoint follows there, after
        validation. Every process must come to the same answer, since they save together."""
        stepped = (batch_idx + 1) % trainer.accumulate_grad_batches == 0
        if trainer.fast_dev_run or not stepped or batch_idx + 1 >= trainer.num_training_batches:
            return False
        due = bool(self.every_steps) and trainer.global_step % self.every_steps == 0
        if self.every_seconds is not None:  # rank zero's clock decides for all processes
            due = trainer.strategy.broadcast(due or time.monotonic() - self.since >= self.every_seconds)
        return due

    def speak(self) -> None:
        """End the silence on_load_checkpoint began, restoring the warning filters as they were."""
        if self.quiet is not None:
            self.quiet.__exit__(None, None, None)
            self.quiet = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.speak()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.speak()  # a resume with no batch left to train
