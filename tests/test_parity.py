"""lit_ner's training step is the Trainer recipe's step: on the same batches, from the same weights, with the same
dropout draws, Lightning + NerModule end where a plain loop doing what transformers' Trainer does ends (its AdamW
groups, linear schedule, clipping at 1.0, the model's own loss). docs/quality.md rests on this."""

import copy
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup
from transformers.trainer_pt_utils import get_parameter_names


@pytest.mark.parametrize("pack", [False, True], ids=["padded", "packed"])
def test_a_lit_ner_step_equals_the_trainer_recipe_step(tiny_model: Path, tmp_path: Path, make_cfg, pack: bool) -> None:
    steps, seed = 6, 42
    cfg = make_cfg(tmp_path / "run", tiny_model, tmp_path / "cache", "model.warmup_ratio=0", "model.lr=1e-3",
                   f"data.pack={pack}")  # fmt: skip
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    batches = [b for _, b in zip(range(steps), loader)]
    # the recipe reads the same sentences a step, padded
    rows = [[datamodule.datasets["train"][i] for i in b] for _, b in zip(range(steps), loader.batch_sampler)]
    padded = [datamodule.collate(r) for r in rows]
    L.seed_everything(seed)
    module = instantiate(cfg.model, labels=datamodule.labels, _convert_="all")
    if pack:  # dropout masks are drawn per tensor shape, and packed rows have other shapes: compare without dropout
        for layer in module.model.modules():
            if isinstance(layer, torch.nn.Dropout):
                layer.p = 0.0
    model = copy.deepcopy(module.model)  # the recipe's side starts from the same weights
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    # the random state each of lit_ner's steps starts from, so the recipe's side draws the same dropout masks
    rng_states = []
    training_step = module.training_step

    def recorded_step(batch, batch_idx):
        rng_states.append(torch.get_rng_state())
        return training_step(batch, batch_idx)

    module.training_step = recorded_step
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
    # the groups themselves: a parameter decayed on one side only moves too little in a few steps to show in the
    # weights (a LayerNorm weight about lr * weight_decay per step)
    ours_by_id = {id(p): group for group in trainer.optimizers[0].param_groups for p in group["params"]}
    for (name, ours), theirs in zip(module.model.named_parameters(), model.parameters()):
        recipe = next(group for group in groups if any(p is theirs for p in group["params"]))
        assert ours_by_id[id(ours)]["weight_decay"] == recipe["weight_decay"], name
        assert ours_by_id[id(ours)]["initial_lr"] == pytest.approx(cfg.model.lr), name  # before the schedule
    schedule = get_linear_schedule_with_warmup(optimizer, 0, steps)
    model.train()
    assert len(rng_states) == steps
    for batch, rng_state in zip(padded, rng_states):
        torch.set_rng_state(rng_state)
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
