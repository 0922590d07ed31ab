"""lit_ner's training step is the Trainer recipe's step: on the same batches, from the same weights, with the same
dropout draws, Lightning + NerModule end where a plain loop doing what transformers' Trainer does ends (its AdamW
groups, linear schedule, clipping at 1.0, the model's own loss). docs/quality.md rests on this."""

import copy
import random
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup
from transformers.trainer_pt_utils import get_parameter_names


def batch_seed(seed: int, epoch: int, batch_idx: int) -> int:
    """The dropout seed NerModule.on_train_batch_start sets (rank 0), so both sides draw the same masks."""
    return (((seed * 1_000_003 + epoch) * 1_000_003 + batch_idx) * 101) % 2**32


def test_a_lit_ner_step_equals_the_trainer_recipe_step(tiny_model: Path, tmp_path: Path, make_cfg) -> None:
    steps, seed = 6, 42
    cfg = make_cfg(tmp_path / "run", tiny_model, tmp_path / "cache", "model.warmup_ratio=0", "model.lr=1e-3")
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("fit")
    batches = [b for _, b in zip(range(steps), datamodule.train_dataloader())]
    L.seed_everything(seed)
    module = instantiate(cfg.model, labels=datamodule.labels, _convert_="all")
    model = copy.deepcopy(module.model)  # the recipe's side starts from the same weights
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}

    trainer = L.Trainer(max_steps=steps, gradient_clip_val=1.0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", limit_val_batches=0)  # fmt: skip
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))

    # the recipe: transformers' Trainer's optimizer groups (no decay on biases and LayerNorm), schedule and clipping
    decay = set(get_parameter_names(model, [torch.nn.LayerNorm], ["bias", "layernorm", "rmsnorm"]))
    groups = [
        {"params": [p for n, p in model.named_parameters() if n in decay], "weight_decay": cfg.model.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n not in decay], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=cfg.model.lr)
    schedule = get_linear_schedule_with_warmup(optimizer, 0, steps)
    model.train()
    for i, batch in enumerate(batches):
        s = batch_seed(seed, 0, i)
        random.seed(s), np.random.seed(s), torch.manual_seed(s)
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()

    for (name, ours), (_, theirs) in zip(module.model.named_parameters(), model.named_parameters()):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4, msg=name)
    moved = max((p - initial[name]).abs().max().item() for name, p in model.named_parameters())
    assert moved > 1e-3  # the steps changed the weights: equal endpoints mean equal training, not no training
