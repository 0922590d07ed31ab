"""NerModule's optimizer as a user meets it: the learning rate and weight decay each parameter gets (layer_lr_decay,
no decay on biases and LayerNorm), what freezing leaves to train (head_only, train_last_layers), the group names
the loggers show, and dropout masks that depend on the seed, the epoch and the batch alone."""

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from lit_ner.errors import ConfigError
from lit_ner.module import NerModule
from lit_ner.resume import ExactResume

LABELS = ["O", "B-PER", "I-PER"]
LR = 1e-3


def module_on(model: Path, **hparams) -> NerModule:
    return NerModule(str(model), LABELS, lr=LR, **hparams)


def trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, **kwargs)  # fmt: skip


def optimizer_groups(module: NerModule) -> dict[str, dict]:
    """The AdamW that training builds: for each parameter name, its group (lr, weight_decay, name)."""
    module.trainer = trainer(max_epochs=-1, max_steps=10)  # a step budget the schedule can read without data
    optimizer = module.configure_optimizers()["optimizer"]
    group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    assert len(group_of) == sum(len(group["params"]) for group in optimizer.param_groups)  # no parameter twice
    return {name: group_of[id(p)] for name, p in module.model.named_parameters() if id(p) in group_of}


def batches(n: int, vocab: int, generator: torch.Generator) -> list[dict[str, torch.Tensor]]:
    return [
        {"input_ids": torch.randint(5, vocab, (4, 12), generator=generator), "attention_mask": torch.ones(4, 12),
         "labels": torch.randint(0, len(LABELS), (4, 12), generator=generator)}
        for _ in range(n)
    ]  # fmt: skip


def test_layer_lr_decay_gives_each_layer_lr_times_decay_to_its_depth_below_the_head(tiny_model: Path) -> None:
    groups = optimizer_groups(module_on(tiny_model, layer_lr_decay=0.5))
    # the tiny BERT has two layers: the head trains at lr, the top layer at lr/2, the one below at lr/4, and the
    # embeddings, below every layer, at lr/8
    expected = {"classifier.": LR, "bert.encoder.layer.1.": LR / 2, "bert.encoder.layer.0.": LR / 4,
                "bert.embeddings.": LR / 8}  # fmt: skip
    assert len(groups) == len(list(module_on(tiny_model).model.parameters()))  # every parameter trains
    for name, group in groups.items():
        [lr] = [lr for prefix, lr in expected.items() if name.startswith(prefix)]
        assert group["lr"] == pytest.approx(lr), name
    # the default is one learning rate for all
    assert {group["lr"] for group in optimizer_groups(module_on(tiny_model)).values()} == {LR}


def test_no_weight_decay_on_biases_and_layernorm_weights(tiny_model: Path) -> None:
    groups = optimizer_groups(module_on(tiny_model, weight_decay=0.1))
    exempt = {name for name in groups if name.endswith(".bias") or ".LayerNorm." in name}
    assert exempt and any("LayerNorm.weight" in name for name in exempt)
    for name, group in groups.items():
        assert group["weight_decay"] == (0.0 if name in exempt else 0.1), name


def test_group_names_say_which_layer_a_parameter_belongs_to(tiny_model: Path) -> None:
    # the names the loggers show (params/<name>) and the log line of trainable parameters: layer_<i> is the
    # encoder's layer i, as transformers numbers it
    groups = optimizer_groups(module_on(tiny_model))
    expected = {"classifier.": "head", "bert.encoder.layer.1.": "layer_1", "bert.encoder.layer.0.": "layer_0",
                "bert.embeddings.": "embeddings"}  # fmt: skip
    for name, group in groups.items():
        [where] = [where for prefix, where in expected.items() if name.startswith(prefix)]
        assert group["name"] == where + ("_no_decay" if group["weight_decay"] == 0 else ""), name
    assert {group["name"] for group in groups.values()} == {
        f"{where}{kind}" for where in expected.values() for kind in ("", "_no_decay")
    }


def tiny_albert(folder: Path) -> Path:
    from transformers import AlbertConfig, AlbertModel

    config = AlbertConfig(vocab_size=64, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=2, intermediate_size=64, max_position_embeddings=32)  # fmt: skip
    AlbertModel(config).save_pretrained(folder)
    return folder


def test_an_encoder_whose_layers_share_weights_trains_as_one_model_group(tmp_path: Path) -> None:
    # ALBERT's layers are one set of weights: no per-layer groups, one "model" group at lr
    albert = tiny_albert(tmp_path / "albert")
    groups = optimizer_groups(module_on(albert))
    assert {group["name"] for group in groups.values()} == {"model", "model_no_decay"}
    assert {group["lr"] for group in groups.values()} == {LR}
    with pytest.raises(ConfigError, match="model.layer_lr_decay"):
        optimizer_groups(module_on(albert, layer_lr_decay=0.5))


def test_train_last_layers_leaves_the_top_layers_and_the_head_to_the_optimizer(tiny_model: Path) -> None:
    groups = optimizer_groups(module_on(tiny_model, train_last_layers=1))
    assert groups and all(name.startswith(("classifier.", "bert.encoder.layer.1.")) for name in groups)
    assert any(name.startswith("bert.encoder.layer.1.") for name in groups)


def test_head_only_trains_the_classifier_and_leaves_the_encoder_as_loaded(tiny_model: Path) -> None:
    module = module_on(tiny_model, head_only=True)
    assert set(optimizer_groups(module)) == {name for name, _ in module.model.named_parameters()
                                             if name.startswith("classifier.")}  # fmt: skip
    before = {name: p.detach().clone() for name, p in module.model.named_parameters()}
    data = batches(3, module.model.config.vocab_size, torch.Generator().manual_seed(0))
    trainer(max_steps=3, limit_val_batches=0).fit(module, DataLoader(data, batch_size=None))
    for name, p in module.model.named_parameters():
        if name.startswith("classifier."):
            assert not torch.equal(p, before[name]), f"{name} did not train"
        else:
            assert torch.equal(p, before[name]), f"{name} moved under head_only"


def test_dropout_masks_depend_on_the_seed_epoch_and_batch_alone(tiny_model: Path, tmp_path: Path) -> None:
    # so a resumed run draws the masks the uninterrupted run drew, whatever consumed random numbers before
    module = module_on(tiny_model, seed=42)
    module.trainer = trainer(max_epochs=3)
    resume = ExactResume(str(tmp_path / "last.ckpt"))  # the callback that reseeds before every training batch
    [batch] = batches(1, module.model.config.vocab_size, torch.Generator().manual_seed(0))

    def logits(batch_idx: int, epoch: int = 0) -> torch.Tensor:
        module.trainer.fit_loop.epoch_progress.current.completed = epoch  # what current_epoch reads
        resume.on_train_batch_start(module.trainer, module, batch, batch_idx)
        with torch.no_grad():
            return module({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]})

    first = logits(3)
    torch.rand(1000)  # random numbers consumed in between, as model init, a restore or a sanity check does
    assert torch.equal(logits(3), first)
    assert not torch.equal(logits(4), first)  # another batch, other masks (dropout is on, too)
    assert not torch.equal(logits(3, epoch=1), first)  # the same batch index in the next epoch
    module.hparams.seed = 7
    assert not torch.equal(logits(3), first)  # another seed
