"""Distillation and smaller students: which layers a student keeps, the loss that teaches it, the checks on its
teacher, the student as an export like any other (its one-path test is in test_one_path, `distilled`), and the
unlabelled text its teacher tags for it (distill.unlabelled)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from lightning.pytorch.callbacks import Callback
from transformers import AutoConfig, pipeline

from lit_ner.data.align import IGNORE
from lit_ner.errors import ConfigError, DataError
from lit_ner.heads.token import TokenHead
from lit_ner.module import NerModule, kept_layers
from lit_ner.train import train
from test_one_path import corpus


def test_a_student_keeps_the_first_layers_or_evenly_spaced_ones_ending_with_the_last() -> None:
    assert kept_layers(6, 3) == [0, 1, 2]  # the top layers dropped
    assert kept_layers(6, 3, "spread") == [1, 3, 5]  # every second layer, as DistilBERT's student
    assert kept_layers(12, 6, "spread") == [1, 3, 5, 7, 9, 11]
    assert kept_layers(6, 6, "spread") == kept_layers(6, 6) == list(range(6))
    assert kept_layers(6, 2, "spread") == [2, 5]
    assert kept_layers(2, 1, "spread") == [1]
    with pytest.raises(ConfigError, match="model.layer_choice=top: give one of first, spread"):
        kept_layers(6, 3, "top")


def test_the_distillation_loss_is_the_kl_to_the_teacher_at_the_scored_positions() -> None:
    head = TokenHead(["O", "B-PER", "I-PER"])
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 4, 3, requires_grad=True), torch.randn(2, 4, 3)
    labels = torch.tensor([[IGNORE, 0, 1, IGNORE], [IGNORE, 2, IGNORE, IGNORE]])
    batch = {"labels": labels}
    loss = head.distill_loss(student, teacher, batch, temperature=2.0)
    read = labels != IGNORE
    p = torch.softmax(teacher[read] / 2, -1)
    expected = (p * (p.log() - torch.log_softmax(student[read] / 2, -1))).sum(-1).mean() * 4
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # the ignored positions do not count, and a student equal to its teacher has nothing to learn
    moved = student.detach().clone()
    moved[~read] += 5.0
    assert head.distill_loss(moved, teacher, batch, 2.0).item() == pytest.approx(loss.item(), rel=1e-6)
    assert head.distill_loss(teacher, teacher, batch, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    # a step down its gradient brings the student's probabilities nearer the teacher's
    loss.backward()
    with torch.no_grad():
        assert head.distill_loss(student - 0.5 * student.grad, teacher, batch, 2.0) < loss


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Settings of a small CoNLL corpus (PER and LOC) the tiny model learns in two epochs."""
    folder = tmp_path_factory.mktemp("distill_data")
    for split, seed, n in (("train", 1, 60), ("dev", 2, 10), ("test", 3, 12)):
        (folder / f"{split}.txt").write_text(corpus(seed, n))
    return ["data=local", f"data.path={folder}", "data.max_length=64", "model.lr=3e-3"]


@pytest.fixture(scope="module")
def teacher(data: list[str], tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, make_cfg) -> Path:
    root = tmp_path_factory.mktemp("teacher")
    return Path(train(make_cfg(root / "run", tiny_model, root / "cache", *data, size=None))["export"])


def test_a_student_of_one_layer_exports_as_a_plain_one_layer_model(
    data: list[str], teacher: Path, tmp_path: Path, make_cfg
) -> None:
    result = train(make_cfg(tmp_path / "run", teacher, tmp_path / "cache", *data, "model.num_layers=1",
                            f"distill.teacher={teacher}", size=None))  # fmt: skip
    export = Path(result["export"])
    assert AutoConfig.from_pretrained(export).num_hidden_layers == 1
    weights = load_file(export / "model.safetensors")
    assert any(".layer.0." in k for k in weights) and not any(".layer.1." in k for k in weights)
    # the checkpoint holds the student alone: the teacher is read at fit start, never saved
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert not any("teacher" in k for k in state["state_dict"])
    assert state["hyper_parameters"]["distill"]["teacher"] == str(teacher)
    tagger = pipeline("token-classification", model=str(export), aggregation_strategy="first")
    found = tagger("john smith was in london")  # transformers reads it as any token classifier
    assert {e["entity_group"] for e in found} == {"PER", "LOC"}, found
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["scores"]["test/f1"] > 0.5


@pytest.mark.parametrize(("choice", "layer"), [("first", 0), ("spread", 1)])
def test_a_student_starts_from_the_teacher_layer_it_keeps(teacher: Path, choice: str, layer: int) -> None:
    weights = load_file(teacher / "model.safetensors")
    labels = AutoConfig.from_pretrained(teacher).id2label.values()
    student = NerModule(str(teacher), list(labels), num_layers=1, layer_choice=choice).model.state_dict()
    kept = {k: v for k, v in weights.items() if f".layer.{layer}." in k}
    assert kept and all(torch.equal(student[k.replace(f".layer.{layer}.", ".layer.0.")], v) for k, v in kept.items())
    assert not any(".layer.1." in k for k in student)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["head=span"], "distillation reads a trained token head"),
        (["distill.alpha=1.5"], "distill.alpha=1.5 must lie in [0, 1]"),
        (["data.train_scheme=IOBES"], "the teacher's labels"),
    ],
)
def test_a_teacher_that_cannot_teach_stops_before_training(
    data: list[str], teacher: Path, tmp_path: Path, make_cfg, overrides: list[str], message: str
) -> None:
    cfg = make_cfg(tmp_path / "run", teacher, tmp_path / "cache", *data, f"distill.teacher={teacher}", *overrides,
                   size=None)  # fmt: skip
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_an_untrained_encoder_is_no_teacher(data: list[str], tiny_model: Path, tmp_path: Path, make_cfg) -> None:
    cfg = make_cfg(tmp_path / "run", tiny_model, tmp_path / "cache", *data, f"distill.teacher={tiny_model}", size=None)
    with pytest.raises(ConfigError, match="is an encoder without a trained head"):
        train(cfg)


class FirstLoss(Callback):
    def __init__(self) -> None:
        self.loss: float | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.loss is None:
            self.loss = float(outputs["loss"])


def test_alpha_weighs_the_gold_loss_against_the_teachers(data: list[str], teacher: Path, tmp_path: Path, make_cfg) -> None:
    """The same first batch: alpha=1 is the gold cross-entropy alone, alpha=0 the teacher's KL alone, 0.5 the mean."""
    def first_loss(*overrides: str) -> float:
        meter = FirstLoss()
        cfg = make_cfg(tmp_path / f"run{len(list(tmp_path.iterdir()))}", teacher, tmp_path / "cache", *data, f"distill.teacher={teacher}",
                       "+trainer.max_steps=1", "test=false", "export=false", *overrides, size=None)  # fmt: skip
        train(cfg, callbacks=[meter])
        return meter.loss

    gold, taught = first_loss("distill.alpha=1", "model.num_layers=1"), first_loss("distill.alpha=0", "model.num_layers=1")
    assert gold > 0.1 and 0 < taught < gold, (gold, taught)  # a student of the teacher's layers starts near it
    assert first_loss("distill.alpha=0.5", "model.num_layers=1") == pytest.approx((gold + taught) / 2, rel=1e-3)


# ---- unlabelled text the teacher tags (distill.unlabelled)


@pytest.fixture()
def unlabelled(tmp_path: Path) -> list[Path]:
    """A .txt of raw sentences, and a CoNLL file whose words carry WikiANN's "en:" and whose tag column (wrong on
    purpose) is not read."""
    text = tmp_path / "raw.txt"
    text.write_text("mary walker wrote a book in paris.\n\njohn smith was in berlin\n")
    conll = tmp_path / "words.conll"
    conll.write_text("-DOCSTART- O\n\nen:anna B-LOC\nen:smith B-LOC\nen:said B-LOC\n\nen:london B-LOC\nen:river B-LOC\n")
    return [text, conll]


def tagged(run_dir: Path) -> list[dict]:
    path = run_dir / "distill" / "unlabelled.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_unlabelled_sentences_join_training_with_the_teachers_tags(
    data: list[str], teacher: Path, tmp_path: Path, make_cfg, unlabelled: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lit_ner.app import build
    from lit_ner.predict import NerPredictor

    files = f"distill.unlabelled=[{unlabelled[0]},{unlabelled[1]}]"
    overrides = (*data, f"distill.teacher={teacher}", files, "distill.token_prefix=en:", "model.num_layers=1")
    cfg = make_cfg(tmp_path / "run", teacher, tmp_path / "cache", *overrides, size=None)
    result = train(cfg)
    assert result["scores"]["test/f1"] > 0.5
    records = tagged(tmp_path / "run")
    words = [["mary", "walker", "wrote", "a", "book", "in", "paris", "."], ["john", "smith", "was", "in", "berlin"],
             ["anna", "smith", "said"], ["london", "river"]]  # fmt: skip
    assert [r["tokens"] for r in records] == words  # the blank line left out, the prefix stripped
    expected = [d.tags for d in NerPredictor.from_pretrained(teacher).word_tags(words)]
    assert [r["tags"] for r in records] == expected and any(t != "O" for tags in expected for t in tags)
    documents = [r["document"] for r in records]
    assert documents[0] != documents[1] != documents[2] == documents[3]  # lines apart; a CoNLL document together

    # the training split the run read: the data's own sentences, then exactly these
    alone = build(cfg.data, _convert_="all")
    alone.prepare_data()
    added = build(cfg.data, extra_train=[str(tmp_path / "run" / "distill" / "unlabelled.jsonl")], _convert_="all")
    assert (added.cache_path / "meta.json").exists()  # prepared by the run, not here
    train_words = added.cached_words()["train"]["tokens"]
    assert list(train_words) == list(alone.cached_words()["train"]["tokens"]) + words

    # a resumed run reads the file again, untouched, even where the unlabelled text has changed since
    unlabelled[0].write_text("peter walker was in york\n")
    monkeypatch.setattr(NerPredictor, "from_pretrained", lambda *a, **k: pytest.fail("tagged again on resume"))
    resumed = make_cfg(tmp_path / "other", teacher, tmp_path / "cache", *overrides, f"ckpt_path={tmp_path / 'run'}",
                       size=None)  # fmt: skip
    train(resumed)
    assert tagged(tmp_path / "run") == records


def test_a_changed_unlabelled_file_is_a_new_cache_entry(
    data: list[str], teacher: Path, tmp_path: Path, make_cfg, unlabelled: list[Path]
) -> None:
    def run(name: str) -> set[str]:
        cfg = make_cfg(tmp_path / name, teacher, tmp_path / "cache", *data, f"distill.teacher={teacher}",
                       f"distill.unlabelled={unlabelled[0]}", "+trainer.max_steps=1", "test=false", "export=false",
                       size=None)  # fmt: skip
        train(cfg)
        return {p.name for p in (tmp_path / "cache").iterdir() if (p / "meta.json").exists()}

    first = run("first")
    unlabelled[0].write_text("peter walker was in york\n")
    second = run("second")
    assert len(second - first) == 1  # the teacher's new tags: a new entry, not the first run's
    assert tagged(tmp_path / "second")[0]["tokens"] == ["peter", "walker", "was", "in", "york"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("missing.txt", "distill.unlabelled: {tmp}/missing.txt is not a file"),
        ("notes.csv", "distill.unlabelled: {tmp}/notes.csv ends in '.csv', which is no format of unlabelled"),
        ("empty.conll", "distill.unlabelled: {tmp}/empty.conll is empty"),
        ("bad.jsonl", "distill.unlabelled={tmp}/bad.jsonl, line 1: expected a JSON object"),
        ("no teacher", "distill.unlabelled=.*: the teacher tags these sentences; set distill.teacher=<export> too"),
    ],
)
def test_unlabelled_text_that_cannot_be_tagged_stops_before_training(
    data: list[str], teacher: Path, tmp_path: Path, make_cfg, given: str, message: str
) -> None:
    for name, text in (("notes.csv", "a,b\n"), ("empty.conll", ""), ("bad.jsonl", '{"words": ["a"]}\n')):
        (tmp_path / name).write_text(text)
    (tmp_path / "raw.txt").write_text("john smith was in london\n")
    file = tmp_path / ("raw.txt" if given == "no teacher" else given)
    taught = [] if given == "no teacher" else [f"distill.teacher={teacher}"]
    cfg = make_cfg(tmp_path / "run", teacher, tmp_path / "cache", *data, *taught, f"distill.unlabelled={file}",
                   size=None)  # fmt: skip
    with pytest.raises((ConfigError, DataError), match=message.format(tmp=tmp_path).replace("[", r"\[")):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "distill").exists()
