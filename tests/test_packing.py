"""Packed training batches (data.pack, the default): every sentence of an epoch once, rows no wider than the batch's
longest sentence, and the same logits and loss as the padded batch of the same sentences."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForTokenClassification, DistilBertConfig, DistilBertForTokenClassification

from lit_ner.data import NerDataModule
from lit_ner.data.align import IGNORE
from lit_ner.data.packing import first_fit, packs_exactly
from lit_ner.heads.base import segments
from lit_ner.module import NerModule


def write_conll(path: Path, sentences: list[list[tuple[str, str]]]) -> None:
    path.write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in sentences) + "\n")


@pytest.fixture()
def datamodule(tiny_model: Path, tmp_path: Path) -> NerDataModule:
    folder = tmp_path / "data"
    folder.mkdir()
    base = [("alan", "B-PER"), ("walker", "I-PER"), ("wrote", "O"), ("in", "O"), ("london", "B-LOC")]
    train = [base[: 1 + i % 5] * (1 + i % 4) for i in range(45)] + [base * 10]  # 1 to 20 words, and one in windows
    write_conll(folder / "train.txt", train)
    write_conll(folder / "dev.txt", [base, base[2:]])
    dm = NerDataModule(tokenizer_name_or_path=str(tiny_model), path=str(folder), cache_dir=str(tmp_path / "cache"),
                       max_length=32, batch_size=8, seed=3)  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_first_fit_places_every_item_once_within_the_width() -> None:
    lengths = [7, 3, 9, 2, 2, 5, 9, 1]
    rows = first_fit(lengths, 9)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 9 for row in rows)
    assert len(rows) == 5  # 38 tokens need at least 5 rows of 9


def test_an_epoch_of_packed_batches_reads_every_sentence_once(datamodule: NerDataModule) -> None:
    split = datamodule.datasets["train"]
    loader = datamodule.train_dataloader()
    seen = []
    for indices, batch in zip(loader.batch_sampler, loader):
        rows = [split[i] for i in indices]
        width = max(len(r["input_ids"]) for r in rows)
        assert batch["input_ids"].shape[1] == width  # no row wider than the batch's longest sentence
        assert len(batch["input_ids"]) <= len(rows)
        # each sentence lies whole in one row, its positions 0..n-1; what is left is padding, labelled IGNORE
        starts = (batch["position_ids"] == 0).nonzero().tolist()
        found = []
        for r, c in starts:
            n = next((k for k in range(1, width - c) if batch["position_ids"][r, c + k] != k), width - c)
            found.append(batch["input_ids"][r, c : c + n].tolist())
        real = [r["input_ids"] for r in rows]
        assert sorted(real) == sorted(ids for ids in found if ids in real)
        assert batch["labels"].ne(IGNORE).sum() == sum(sum(label != IGNORE for label in r["labels"]) for r in rows)
        seen += [r["sentence"] for r in rows]
    assert sorted(seen) == sorted(split["sentence"])  # windows of one sentence are rows of their own
    assert len(seen) == len(split)


HEADS = {"token": {"name": "token"}, "crf": {"name": "crf"}, "span": {"name": "span", "max_width": 4, "nested": False}}


@pytest.mark.parametrize("head", HEADS)
def test_a_packed_batch_gives_the_padded_batchs_logits_and_loss(datamodule: NerDataModule, tiny_model: Path,
                                                                head: str) -> None:
    """Every head reads a packed batch's sentences (lit_ner.heads.base.segments) as it reads them padded."""
    torch.manual_seed(0)
    module = NerModule(str(tiny_model), datamodule.labels, head=HEADS[head]).eval()
    assert packs_exactly(module.model, module.model.config.vocab_size)
    split = datamodule.datasets["train"]
    for indices in list(datamodule.train_dataloader().batch_sampler)[:3]:
        rows = [split[i] for i in indices]
        padded, packed = datamodule.collate(rows), datamodule.collate_packed(rows)
        assert packed["order"].tolist() != list(range(len(rows)))  # laid out otherwise: the test must map them
        with torch.no_grad():
            plain, shared = module(padded), module(packed)
        # each sentence's scored words, found in either layout by the rows they came from
        for (row, at), (same_row, packed_at) in zip(sorted(segments(padded)), sorted(segments(packed))):
            assert row == same_row and len(at) == len(packed_at)
            torch.testing.assert_close(plain.flatten(0, 1)[at], shared.flatten(0, 1)[packed_at], atol=1e-5, rtol=1e-4)
        with torch.no_grad():
            loss = module.head.loss(plain, padded)
            torch.testing.assert_close(loss, module.head.loss(shared, packed), atol=1e-6, rtol=1e-5)


def test_an_encoder_that_cannot_read_packed_rows_trains_on_padded_batches(datamodule: NerDataModule, caplog) -> None:
    config = DistilBertConfig(vocab_size=200, dim=32, n_layers=1, n_heads=2, hidden_dim=64, num_labels=3)
    model = DistilBertForTokenClassification(config)
    if packs_exactly(model, config.vocab_size):
        pytest.skip("this transformers reads DistilBERT's packed rows exactly")
    datamodule.check_packing(model)
    assert "training on padded batches" in caplog.text
    assert "attention_mask" in next(iter(datamodule.train_dataloader()))


def test_packing_is_checked_on_the_real_encoder_family(tiny_model: Path) -> None:
    model = AutoModelForTokenClassification.from_pretrained(tiny_model, num_labels=3).train()
    assert packs_exactly(model, model.config.vocab_size)
    assert model.training  # the check (in eval mode, no dropout) leaves the mode as it found it
