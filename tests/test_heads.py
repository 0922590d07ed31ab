"""The heads (lit_ner.heads): each one's loss falls on the tiny model; decoding what a head would score for the gold
entities gives them back (nested for the span head); the CRF never emits a transition its scheme forbids; a span
head's training targets are the encoded gold spans; its widest span comes from the data, and a narrower one names
what it cannot reach."""

import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lit_ner.data import NerDataModule
from lit_ner.data.schemes import entity_spans, invalid_transitions, outermost_tags
from lit_ner.errors import ConfigError
from lit_ner.heads import HEADS, build_head, configure_head
from lit_ner.heads.base import segments
from lit_ner.heads.crf import viterbi
from lit_ner.heads.span import spans_of
from lit_ner.module import NerModule

TYPES = ["LOC", "PER", "creative-work"]
IOB2 = ["O", *(f"{p}-{t}" for t in TYPES for p in "BI")]
IOBES = ["O", *(f"{p}-{t}" for t in TYPES for p in "BIES")]
OPTIONS = {"token": {"name": "token"}, "crf": {"name": "crf"}, "span": {"name": "span", "max_width": 3, "nested": True}}


@pytest.fixture(scope="module")
def datamodule(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> NerDataModule:
    dm = NerDataModule(str(tiny_model), synthetic="books", synthetic_size=96, batch_size=16, max_length=128,
                       cache_dir=str(tmp_path_factory.mktemp("cache")))  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("head", OPTIONS)
def test_the_loss_falls_on_the_tiny_model(datamodule: NerDataModule, tiny_model: Path, head: str) -> None:
    torch.manual_seed(0)
    module = NerModule(str(tiny_model), datamodule.labels, head=OPTIONS[head])
    batch = next(iter(datamodule.train_dataloader()))  # packed: every head reads packed batches
    assert "position_ids" in batch
    optimizer = torch.optim.AdamW([p for g in module.parameter_groups() for p in g["params"]], lr=3e-3)
    losses = []
    for _ in range(30):
        loss = module.head.loss(module(batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::5]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.head.parameters()) or head == "token"


def sentences(draw: st.DrawFn, nested: bool) -> tuple[int, list[tuple[str, int, int]]]:
    """A sentence's length and entities: flat, or nested without crossing (each inside another or apart)."""
    n = draw(st.integers(1, 12))
    chosen: list[tuple[str, int, int]] = []
    for _ in range(draw(st.integers(0, 6))):
        start = draw(st.integers(0, n - 1))
        end = draw(st.integers(start + 1, min(n, start + 3)))
        type_ = draw(st.sampled_from(TYPES))
        inside_or_apart = all(e <= start or end <= s or (nested and ((s <= start and end <= e) or (start <= s and e <= end)))
                              for _, s, e in chosen)  # fmt: skip
        if inside_or_apart and all((s, e) != (start, end) for _, s, e in chosen):
            chosen.append((type_, start, end))
    return n, sorted(chosen, key=lambda e: (e[1], -e[2]))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), nested=st.booleans())
def test_the_span_head_decodes_the_gold_spans_back(data: st.DataObject, nested: bool) -> None:
    n, gold = sentences(data.draw, nested)
    head = build_head({"name": "span", "max_width": 3, "nested": nested}, IOB2)
    starts, ends = spans_of(n, 3)
    logits = np.zeros((len(starts), len(TYPES) + 1), dtype=np.float32)
    logits[:, 0] = 2.0  # "no entity", unless gold says otherwise
    for type_, s, e in gold:
        k = int(np.flatnonzero((starts == s) & (ends == e))[0])
        logits[k, 1 + TYPES.index(type_)] = 4.0
    reading = head.new_reading(n)
    reading["spans"] = [(int(s), int(e), row) for s, e, row in zip(starts, ends, logits)]
    decoded = head.decode(reading, 1.0, "first")
    assert [e[:3] for e in decoded.entities] == gold
    assert decoded.tags == outermost_tags(n, sorted(gold, key=lambda e: (e[1] - e[2], e[1])))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), labels=st.sampled_from([IOB2, IOBES]), head=st.sampled_from(["token", "crf"]))
def test_a_tagger_decodes_the_gold_tags_back(data: st.DataObject, labels: list[str], head: str) -> None:
    n, gold = sentences(data.draw, nested=False)
    tags = ["O"] * n
    for type_, s, e in gold:  # in the labels' scheme
        if "E-PER" in labels and e - s == 1:
            tags[s] = f"S-{type_}"
        else:
            tags[s:e] = [f"B-{type_}"] + [f"I-{type_}"] * (e - s - 1)
            if "E-PER" in labels:
                tags[e - 1] = f"E-{type_}"
    logits = np.full((n, len(labels)), -1.0, dtype=np.float32)
    logits[np.arange(n), [labels.index(t) for t in tags]] = 3.0
    decoded = build_head({"name": head}, labels).decode(logits, 1.0, "first")
    assert decoded.tags == tags and [e[:3] for e in decoded.entities] == gold


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), head=st.sampled_from(["token", "crf", "span", "span-nested"]),
       temperature=st.sampled_from([0.25, 0.5, 0.76, 1.5, 4.0]))  # fmt: skip
def test_calibration_changes_the_scores_never_the_entities(seed: int, head: str, temperature: float) -> None:
    """An export's temperature rescales its scores; the entities it finds are the model's own (those the training
    metric counted when the checkpoint was chosen), whatever temperature calibration fitted."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 10))
    if head.startswith("span"):
        built = build_head({"name": "span", "max_width": 3, "nested": head == "span-nested"}, IOB2)
        starts, ends = spans_of(n, 3)
        reading = built.new_reading(n)
        logits = rng.normal(0, 2, (len(starts), len(TYPES) + 1)).astype(np.float32)
        reading["spans"] = [(int(s), int(e), row) for s, e, row in zip(starts, ends, logits)]
    else:
        built, reading = build_head({"name": head}, IOB2), rng.normal(0, 2, (n, len(IOB2))).astype(np.float32)
    own, scaled = (built.decode(reading, t, "first") for t in (1.0, temperature))
    assert [e[:3] for e in scaled.entities] == [e[:3] for e in own.entities] and scaled.tags == own.tags
    if own.entities:
        assert [e.score for e in scaled.entities] != pytest.approx([e.score for e in own.entities])


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), labels=st.sampled_from([IOB2, IOBES]), n=st.integers(1, 15))
def test_the_crf_never_emits_a_transition_its_scheme_forbids(seed: int, labels: list[str], n: int) -> None:
    rng = np.random.default_rng(seed)
    head = build_head({"name": "crf", "transitions": rng.normal(0, 3, (len(labels),) * 2).tolist(),
                       "start": rng.normal(0, 3, len(labels)).tolist(), "end": rng.normal(0, 3, len(labels)).tolist()},
                      labels)  # fmt: skip
    emissions = rng.normal(0, 5, (n, len(labels))).astype(np.float32)  # scores that favour invalid sequences
    tags = head.decode(emissions, 1.0, "first").tags
    assert len(tags) == n and invalid_transitions(tags, "IOBES" if "E-PER" in labels else "IOB2") == []


def test_where_the_scores_say_i_after_o_the_crf_says_otherwise() -> None:
    emissions = np.full((3, len(IOB2)), -2.0, dtype=np.float32)
    emissions[[0, 1, 2], [IOB2.index("O"), IOB2.index("I-PER"), IOB2.index("I-PER")]] = 3.0
    emissions[1, IOB2.index("B-PER")] = 2.5
    assert build_head({"name": "token"}, IOB2).decode(emissions, 1.0, "first").tags == ["O", "I-PER", "I-PER"]
    assert build_head({"name": "crf"}, IOB2).decode(emissions, 1.0, "first").tags == ["O", "B-PER", "I-PER"]


def test_viterbi_finds_the_best_path_by_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n, k = int(rng.integers(1, 5)), 3
        emissions, transitions = rng.normal(size=(n, k)), rng.normal(size=(k, k))
        start, end = rng.normal(size=k), rng.normal(size=k)
        paths = np.array(np.meshgrid(*[range(k)] * n)).reshape(n, -1).T
        scores = [start[p[0]] + emissions[np.arange(n), p].sum() + transitions[p[:-1], p[1:]].sum() + end[p[-1]]
                  for p in paths]  # fmt: skip
        assert viterbi(emissions, transitions, start, end).tolist() == paths[int(np.argmax(scores))].tolist()


@pytest.mark.parametrize("opens", [True, False])
def test_the_crf_loss_is_the_negative_log_likelihood_by_brute_force(opens: bool) -> None:
    """The forward algorithm's partition function is the sum over every path the scheme allows (a window that
    continues a sentence may start on any label), and the loss the gold path's negative log-likelihood."""
    torch.manual_seed(0)
    head = build_head({"name": "crf"}, IOB2)
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.normal_()
    n = 3
    emissions = torch.randn(1, n + 2, len(IOB2))  # [CLS] and [SEP] around three one-piece words
    # a window that continues a sentence may open inside an entity
    gold = [IOB2.index(t) for t in (["B-LOC", "I-LOC", "O"] if opens else ["I-LOC", "O", "B-PER"])]
    labels = torch.full((1, n + 2), -100)
    labels[0, 1 : n + 1] = torch.tensor(gold)
    batch = {"labels": labels, "words": torch.tensor([n]), "continues": torch.tensor([not opens])}
    with torch.no_grad():
        nll = head.loss(emissions, batch).item() * n  # the loss is a mean a word

        def score(path: list[int]) -> torch.Tensor:
            first = head.start + (head.forbidden_start if opens else 0.0)
            steps = sum((head.transitions + head.forbidden)[a, b] for a, b in zip(path, path[1:]))
            return first[path[0]] + emissions[0, torch.arange(1, n + 1), path].sum() + steps + head.end[path[-1]]

        paths = [list(p) for p in np.ndindex(*[len(IOB2)] * n)]
        expected = torch.logsumexp(torch.stack([score(p) for p in paths]), 0) - score(gold)
    assert nll == pytest.approx(expected.item(), rel=1e-4)


def test_a_span_heads_targets_are_the_encoded_gold_spans(datamodule: NerDataModule, tiny_model: Path) -> None:
    head = build_head({"name": "span", "max_width": 8, "nested": False}, datamodule.labels)
    words = datamodule.cached_words()["train"]
    types = head.types
    for batch in list(datamodule.train_dataloader())[:2]:
        hidden = torch.zeros((*batch["input_ids"].shape, 4))
        head.attach(type("Config", (), {"hidden_size": 4})())
        _, target, sequences = head._batch_spans(hidden, batch)
        for (row, _), (packed_row, first, starts, ends, gold) in zip(segments(batch), sequences):
            expected = entity_spans(words[int(batch["sentence"][row])]["tags"])
            assert sorted((types[c - 1], s, e) for s, e, c in gold) == sorted(expected)
            found = {(s, e, int(c)) for s, e, c in zip(starts.tolist(), ends.tolist(),
                                                       target[packed_row, first : first + len(starts)].tolist()) if c}
            assert found == {(s, e, c) for s, e, c in gold}


def test_a_span_head_drawing_negatives_keeps_every_entity_and_so_many_no_entity_spans_a_word(
    datamodule: NerDataModule,
) -> None:  # fmt: skip
    """model.head.negatives: in training each sentence keeps its gold spans and ceil(negatives x words) no-entity
    spans, drawn anew each step; validation (eval mode) reads every span."""
    torch.manual_seed(0)
    head = build_head({"name": "span", "max_width": 4, "nested": False, "negatives": 0.5}, datamodule.labels)
    head.attach(type("Config", (), {"hidden_size": 4})())
    batch = next(iter(datamodule.train_dataloader()))
    _, target, sequences = head._batch_spans(torch.zeros((*batch["input_ids"].shape, 4)), batch)
    draws = [head._sampled(target, sequences) for _ in range(2)]
    for row, first, starts, ends, gold in sequences:
        before, after = (t[row, first : first + len(starts)] for t in (target, draws[0]))
        assert torch.equal(after[before > 0], before[before > 0])  # every entity kept
        assert int((after == 0).sum()) == min(int((before == 0).sum()), -(-int(ends.max()) // 2))
    assert not torch.equal(draws[0], draws[1])
    head.train()
    calls = []
    head._sampled = lambda t, s: calls.append(1) or t
    head.loss(torch.zeros((*batch["input_ids"].shape, 4)), batch)
    head.eval()
    head.loss(torch.zeros((*batch["input_ids"].shape, 4)), batch)
    assert calls == [1]
    with pytest.raises(ConfigError, match="model.head.negatives=0"):
        build_head({"name": "span", "negatives": 0}, IOB2)


def test_the_widest_span_comes_from_the_data_and_a_narrower_one_names_what_it_misses(caplog) -> None:
    train = [(["a", "b", "c", "d"], [("PER", 0, 3), ("LOC", 1, 2)]), (["e"], [])]
    assert configure_head({"name": "span"}, lambda: train) | {} == {"name": "span", "max_width": 3, "nested": True}
    with caplog.at_level(logging.WARNING):
        options = configure_head({"name": "span", "max_width": 2, "nested": False}, lambda: train)
    assert options["max_width"] == 2 and "'a b c' (PER, 3 words)" in caplog.text and "model.head.max_width" in caplog.text
    assert configure_head({"name": "crf"}, lambda: pytest.fail("a CRF needs no data")) == {"name": "crf"}
    with pytest.raises(ConfigError, match="head=spam is unknown; choose one of token, crf, span"):
        build_head({"name": "spam"}, IOB2)
    with pytest.raises(ConfigError, match="model.head: .*width"):
        build_head({"name": "span", "width": 3}, IOB2)
    assert set(HEADS) == {"token", "crf", "span"}


def test_a_span_head_reads_the_spans_of_training_in_every_reader(datamodule: NerDataModule, monkeypatch) -> None:
    """The spans a span head learns from (a training batch's encoded rows) are the spans every reader gives its
    graph (lit_ner.inference's rows): the same first and last sub-tokens and widths, in the same order."""
    from lit_ner.data.encode import encode_rows

    head = build_head({"name": "span", "max_width": 4, "nested": False}, datamodule.labels)
    head.attach(type("Config", (), {"hidden_size": 4})())
    split, words = datamodule.datasets["validation"], datamodule.cached_words()["validation"]
    rows = [split[i] for i in range(8)]
    assert all(r["window"] == 0 for r in rows)
    seen = {}
    monkeypatch.setattr(head, "span_logits", lambda hidden, *spans: seen.setdefault("spans", spans)
                        and torch.zeros((*spans[0].shape, len(head.types) + 1)))  # fmt: skip
    batch = datamodule.collate(rows)
    head._batch_spans(torch.zeros((*batch["input_ids"].shape, 4)), batch)
    hp = datamodule.hparams
    encoded = encode_rows(datamodule.tokenizer, [words[r["sentence"]]["tokens"] for r in rows], hp.max_length,
                          hp.window_context)  # fmt: skip
    inputs = head.batch_inputs([row for _, row in encoded], datamodule.tokenizer.pad_token_id)
    for k, name in enumerate(("span_starts", "span_ends", "span_widths")):
        trained, read = seen["spans"][k], inputs[name]
        for n in range(len(rows)):
            count = int((inputs["span_widths"][n] > 0).sum())
            assert trained[n, :count].tolist() == read[n, :count].tolist(), name
    one_word = inputs["span_widths"] == 1
    assert (inputs["span_ends"] > inputs["span_starts"])[one_word].any()  # a word of several sub-tokens ends later
