"""NerModule: a Hugging Face encoder under a head (lit_ner.heads: token, crf, span), with entity-level metrics,
freezing and AdamW groups."""

import logging
from contextlib import nullcontext
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from torch import nn
from transformers import PreTrainedModel, get_linear_schedule_with_warmup

from lit_ner.errors import ConfigError, RunError
from lit_ner.heads import build_head
from lit_ner.metrics import EntityMetric

log = logging.getLogger(__name__)
TRAINER_KEY = "lit_ner_trainer"  # a checkpoint's entry for the trainer settings it was trained with


def layer_list(model: PreTrainedModel) -> nn.ModuleList | None:
    """The transformer layers of any BERT-like encoder (BERT, DistilBERT, RoBERTa, ...); None where they cannot be
    told apart (e.g. ALBERT, whose layers share one set of weights)."""
    depth = model.config.num_hidden_layers
    return next((m for m in model.base_model.modules() if isinstance(m, nn.ModuleList) and len(m) == depth), None)


def transformer_layers(model: PreTrainedModel) -> nn.ModuleList:
    """The encoder's layers (`layer_list`), or an error naming the settings that need them told apart."""
    layers = layer_list(model)
    if layers is None:
        raise ConfigError(
            f"cannot find the {model.config.num_hidden_layers} transformer layers of {type(model.base_model).__name__}, "
            "so model.freeze_layers, model.train_last_layers, model.freeze_embeddings, model.layer_lr_decay and "
            "model.num_layers do not apply to it; leave them at their defaults (or use model.head_only=true)"
        )
    return layers


def encoder_parts(model: PreTrainedModel) -> tuple[nn.Module | None, list[nn.Module]]:
    """The embeddings and the list of transformer layers of any BERT-like encoder."""
    return getattr(model.base_model, "embeddings", None), list(transformer_layers(model))


LAYER_CHOICES = ("first", "spread")


def kept_layers(depth: int, n: int, choice: str = "first") -> list[int]:
    """Which of `depth` layers a model of `n` keeps: the first `n` (the top layers dropped, which lost least of the
    ways to shorten a pretrained encoder in Sajjad et al., 2023, and on CoNLL-2003: docs/quality.md), or `spread`:
    evenly spaced, ending with the last (6 -> 3: the 2nd, 4th and 6th), as DistilBERT's student started."""
    if choice not in LAYER_CHOICES:
        raise ConfigError(f"model.layer_choice={choice}: give one of {', '.join(LAYER_CHOICES)}")
    if choice == "first":
        return list(range(n))
    return [round((i + 1) * depth / n) - 1 for i in range(n)]


def keep_layers(model: PreTrainedModel, n: int, choice: str = "first") -> None:
    """Shrink the encoder to `n` of its layers (kept_layers), in place; its config says so, so the export is a
    plain `n`-layer model that every reader opens."""
    layers = transformer_layers(model)
    if not 1 <= n <= len(layers):
        raise ConfigError(f"model.num_layers={n}: the encoder has {len(layers)} layers; give 1 to {len(layers)}")
    kept = [layers[i] for i in kept_layers(len(layers), n, choice)]
    del layers[:]
    layers.extend(kept)
    model.config.num_hidden_layers = n


def group_name(depth: int, n_layers: int) -> str:
    """The optimizer group of a parameter `depth` layers below the head (the embeddings lie below every layer)."""
    if depth > n_layers:
        return "embeddings"
    if depth:
        return f"layer_{n_layers - depth}"
    return "head" if n_layers else "model"  # "model": the layers are not told apart


def frozen_modules(
    model: PreTrainedModel,
    freeze_embeddings: bool,
    freeze_layers: int,
    train_last_layers: int | None,
    head_only: bool,
) -> list[nn.Module]:
    """Which parts to freeze: the embeddings, the first N layers, all but the last K layers, or the whole encoder."""
    if head_only:
        return [model.base_model]
    if not freeze_embeddings and not freeze_layers and train_last_layers is None:
        return []  # full fine-tuning works for any encoder, even one whose layers cannot be told apart
    embeddings, layers = encoder_parts(model)
    if train_last_layers is not None:
        freeze_layers = max(freeze_layers, len(layers) - train_last_layers)
        freeze_embeddings = True
    if freeze_layers > len(layers):
        raise ConfigError(
            f"model.freeze_layers={freeze_layers} but the encoder has only {len(layers)} layers; set "
            f"model.freeze_layers={len(layers)} or lower (or model.head_only=true to train the head alone)"
        )
    return ([embeddings] if freeze_embeddings and embeddings is not None else []) + layers[:freeze_layers]


class NerModule(L.LightningModule):
    """An encoder under a head, with entity-level scores. Takes plain values only (the head as a mapping of its
    name and options, conf/head/), so `NerModule.load_from_checkpoint(path)` works in a notebook without Hydra."""

    def __init__(
        self,
        model_name_or_path: str,
        labels: list[str],
        lr: float = 5e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.0,
        freeze_embeddings: bool = False,
        freeze_layers: int = 0,
        train_last_layers: int | None = None,
        head_only: bool = False,
        layer_lr_decay: float = 1.0,
        metric_mode: str = "default",
        seed: int = 42,  # of dropout's draws: lit_ner.resume.ExactResume reseeds every training batch from it
        label_mismatch: str = "error",
        compile: bool = False,
        score_in_float32: bool = True,
        head: dict[str, Any] | None = None,
        num_layers: int | None = None,
        layer_choice: str = "first",
        distill: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.labels = list(labels)
        self.head = build_head(head, self.labels)  # none: the token head (checkpoints older than lit_ner 0.3)
        # from_pretrained returns the model in eval mode, and Lightning keeps a submodule's mode as found:
        # without this, dropout would be off for the whole training
        self.model = self.head.load_backbone(model_name_or_path, label_mismatch).train()
        if num_layers is not None:  # a smaller student from a trained model's layers (distill.teacher teaches it)
            keep_layers(self.model, num_layers, layer_choice)
        # distill: {"teacher": an export, "temperature", "alpha"}; the teacher is read at fit start and kept out of
        # the module's state: checkpoints and the export hold the student alone
        self.distill = dict(distill) if distill and distill.get("teacher") else None
        self._teacher: list[PreTrainedModel] = []
        if compile:  # compiles the forward in place: state_dict keys, checkpoints and exports stay the same
            self.model.compile(dynamic=True)
        for module in frozen_modules(self.model, freeze_embeddings, freeze_layers, train_last_layers, head_only):
            module.requires_grad_(False)
        self.val_metric = EntityMetric(self.labels, mode=metric_mode)
        self.test_metric = EntityMetric(self.labels, mode=metric_mode)
        self.test_strict = EntityMetric(self.labels, mode="strict")
        # the validation pass of the best epoch so far by val/f1, as (input_ids, logits) a batch: the export's
        # temperature is fitted on it without reading the split again (lit_ner.train.finish)
        self.best_validation: tuple[float, list] = (float("-inf"), [])
        self._recording: list | None = None

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """What the head reads of a batch (padded, or packed: sentences sharing rows): its features."""
        return self.head.features(self.model, batch)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        features = self(batch)
        loss = self.head.loss(features, batch)
        if self._teacher:  # alpha of the gold labels' loss, the rest the teacher's (Hinton et al., 2015)
            with torch.no_grad():
                taught = self.head.features(self._teacher[0], batch)
            alpha, temperature = self.distill["alpha"], self.distill["temperature"]
            loss = alpha * loss + (1 - alpha) * self.head.distill_loss(features, taught, batch, temperature)
        if not torch.isfinite(loss):
            self.diverged(f"the training loss is {loss.item()}")
        sentences = len(batch["sentence"]) if "sentence" in batch else len(batch["input_ids"])  # packed rows hold several
        self.log("train/loss", loss, prog_bar=True, batch_size=sentences)
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # fp16's GradScaler meets inf gradients by design and skips that step itself; clipping by norm checks the
        # norm it computes anyway (configure_gradient_clipping), so the gradients are read once a step, not twice
        if self.trainer.precision != "16-mixed" and not self._clips_by_norm():
            norm = torch.nn.utils.get_total_norm([p.grad for p in self.parameters() if p.grad is not None])
            if not torch.isfinite(norm):
                self.diverged(f"the gradient norm is {norm.item()}")

    def _clips_by_norm(self) -> bool:
        """Whether configure_gradient_clipping clips by norm itself and checks that norm: not under fp16 (whose
        scaler skips a non-finite step by design) and only with Lightning's plain precision plugins (not FSDP's or
        DeepSpeed's, which clip in their own way)."""
        trainer = self.trainer
        return (
            bool(trainer.gradient_clip_val)
            and trainer.gradient_clip_algorithm in (None, "norm")
            and trainer.precision != "16-mixed"
            and type(trainer.precision_plugin) in (Precision, MixedPrecision)
        )

    def diverged(self, what: str) -> None:
        """Stop at the first non-finite loss or gradient: the weights are still the last good ones, the
        checkpoints on disk too, and nothing is exported."""
        lr = max(g["lr"] for g in self.trainer.optimizers[0].param_groups)
        raise RunError(
            f"{what} at step {self.global_step} (epoch {self.current_epoch}), learning rate {lr:.3g}: the run "
            f"diverged and stopped. Its checkpoints in {self.trainer.default_root_dir}/checkpoints are from before; "
            f"no model was exported. Try a lower model.lr (model.lr={self.hparams.lr} now, e.g. a tenth), warm-up "
            "(model.warmup_ratio=0.1) or gradient clipping (trainer.gradient_clip_val=1.0)."
        )

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str, metrics: list[EntityMetric]) -> None:
        # under mixed precision the weights stay float32: with autocast off, validation and test read them as the
        # exported model is read (lit_ner.inference), so the scores are those of what is shipped
        scoring = torch.autocast(self.device.type, enabled=False) if self.hparams.score_in_float32 else nullcontext()
        with scoring:
            features = self(batch)
        loss = self.head.loss(features, batch)
        if stage == "val" and self._recording is not None:
            # what the head's inference graph gives for these inputs (lit_ner.runners.Replay)
            inputs = {k: batch[k].cpu() for k in ("input_ids", "attention_mask")}
            self._recording.append((inputs, {self.head.outputs[0]: features.detach().float().cpu().numpy()}))
        self.head.validate(features, batch, metrics)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", batch_size=len(batch["input_ids"]), sync_dist=True)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", [self.val_metric])

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", [self.test_metric, self.test_strict])

    def on_validation_epoch_start(self) -> None:
        # float32 logits only: mixed-precision ones are not what the exported model gives when read in float32
        precision = str(self.trainer.precision)
        full = precision in ("32-true", "32") or (precision.endswith("-mixed") and self.hparams.score_in_float32)
        replays = self.head.replays_validation and full and not self.trainer.sanity_checking
        self._recording = [] if replays else None

    def on_validation_epoch_end(self) -> None:
        scores = self.val_metric.compute()
        # how many entities the model predicted at all: 0 means it has only learnt "O" (see train's zero-F1 warning)
        predicted = self.val_metric.predicted.sum().float()
        self.val_metric.reset()
        if self._recording is not None and float(scores["f1"]) > self.best_validation[0]:
            self.best_validation = (float(scores["f1"]), self._recording)
        self._recording = None
        self.log("val/f1", scores.pop("f1"), prog_bar=True)
        # summed over processes: each validates its own share of the sentences
        self.log("val/predicted_entities", predicted, sync_dist=True, reduce_fx="sum")
        self.log_dict({f"val/{k}": v for k, v in scores.items()})

    def on_test_epoch_end(self) -> None:
        scores = self.test_metric.compute()
        strict = self.test_strict.compute()
        self.test_metric.reset()
        self.test_strict.reset()
        self.log_dict({f"test/{k}": v for k, v in scores.items()})
        self.log_dict({f"test/strict_{k}": v for k, v in strict.items() if k in ("precision", "recall", "f1")})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the trainer settings the optimizer steps and the learning-rate schedule were planned for: a resume must
        # share them (checkpointing.check_resume_config)
        trainer = self.trainer
        checkpoint[TRAINER_KEY] = {
            "max_epochs": trainer.max_epochs,
            "max_steps": trainer.max_steps,
            "accumulate_grad_batches": trainer.accumulate_grad_batches,
            "schedule_steps": int(trainer.estimated_stepping_batches),
            "precision": str(trainer.precision),  # its default depends on the CPU (lit_ner.app.train_precision)
        }

    # ---- optimisation --------------------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        """AdamW groups: no weight decay on biases and LayerNorm weights; with `layer_lr_decay` < 1 each layer
        below the top gets lr * decay**depth (embeddings lowest). Frozen parameters stay out."""
        hp = self.hparams
        try:
            embeddings, layers = encoder_parts(self.model)
        except ConfigError:
            if hp.layer_lr_decay != 1.0:
                raise
            embeddings, layers = None, []  # one learning rate: no need to know the layers
        depth_of: dict[int, int] = {}
        for p in embeddings.parameters() if embeddings is not None else []:
            depth_of[id(p)] = len(layers) + 1
        for i, layer in enumerate(layers):
            for p in layer.parameters():
                depth_of[id(p)] = len(layers) - i
        no_decay_ids = {
            id(p)
            for m in (*self.model.modules(), *self.head.modules())
            if isinstance(m, nn.LayerNorm) or "norm" in type(m).__name__.lower()
            for p in m.parameters(recurse=False)
        }
        groups: dict[tuple[int, bool, bool], dict[str, Any]] = {}
        # the head's own parameters (a CRF's transitions, a span classifier) learn at lr * its lr_scale
        own = {id(p) for p in self.head.parameters()}
        for name, p in (*self.model.named_parameters(), *self.head.named_parameters()):
            if not p.requires_grad:
                continue
            depth, mine = depth_of.get(id(p), 0), id(p) in own
            decay = not (name.endswith("bias") or id(p) in no_decay_ids)
            group = groups.setdefault(
                (depth, decay, mine),
                {
                    "params": [],
                    "weight_decay": hp.weight_decay if decay else 0.0,
                    "lr": hp.lr * (self.head.lr_scale if mine else hp.layer_lr_decay**depth),
                    "name": (f"{self.head.name}_head" if mine else group_name(depth, len(layers)))
                    + ("" if decay else "_no_decay"),
                },
            )
            group["params"].append(p)
        return list(groups.values())

    def configure_optimizers(self) -> dict[str, Any]:
        groups = self.parameter_groups()
        counts = {g["name"]: sum(p.numel() for p in g["params"]) for g in groups}
        total = sum(p.numel() for p in self.parameters())
        log.info("trainable parameters: %d of %d (%s)", sum(counts.values()), total, counts)
        # fused AdamW: one kernel for all parameters instead of a loop over them (CUDA, and CPU since torch 2.4);
        # not under fp16's GradScaler, which has to unscale the gradients before they are clipped
        fused = self.trainer.precision != "16-mixed" and all(
            p.device.type in ("cuda", "cpu") for g in groups for p in g["params"]
        )
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr, fused=fused or None)
        steps = self.trainer.estimated_stepping_batches
        scheduler = get_linear_schedule_with_warmup(optimizer, int(self.hparams.warmup_ratio * steps), steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None, gradient_clip_algorithm: Any = None
    ) -> None:
        # Lightning's mixed-precision plugin refuses to clip for a fused optimizer, for fear of fp16-scaled
        # gradients; lit_ner fuses only without a scaler (fp32, bf16), where the gradients are the true ones.
        # Clipping by norm checks the norm it returns before the optimizer step: a non-finite one stops the run
        # with the weights still the last good ones (what on_before_optimizer_step does when nothing clips)
        params = [p for p in self.parameters() if p.grad is not None]
        if self._clips_by_norm():
            norm = torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)
            if not torch.isfinite(norm):
                self.diverged(f"the gradient norm is {norm.item()}")
            return
        if gradient_clip_val and isinstance(self.trainer.precision_plugin, MixedPrecision):
            if gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
            else:  # fp16: the scaler has unscaled the gradients and skips a step whose norm is not finite
                torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)
            return
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def on_fit_start(self) -> None:
        if self.distill and not self._teacher:  # the teacher's tag probabilities, on the student's device
            teacher = self.head.load_backbone(self.distill["teacher"], "error")
            self._teacher.append(teacher.to(self.device).eval().requires_grad_(False))
        groups = self.parameter_groups()
        for logger in self.loggers:
            logger.log_metrics(
                {f"params/{g['name']}": float(sum(p.numel() for p in g["params"])) for g in groups}, step=0
            )
