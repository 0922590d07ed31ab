"""EntityMetric against seqeval: random tag sequences in both modes, sentences split into windows, summed states."""

import random
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2, IOBES

from lit_ner.metrics import IGNORE, MODES, EntityMetric, decode_entities

TYPES = ["PER", "LOC", "creative-work"]  # a hyphen inside a type must not be read as a prefix separator
SCHEME_PREFIXES = {"IOB2": "BI", "IOBES": "BIES"}
LABELS = {scheme: ["O"] + [f"{p}-{t}" for t in TYPES for p in prefixes] for scheme, prefixes in SCHEME_PREFIXES.items()}
BIO = LABELS["IOB2"]
Tensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # preds, target, continues


@st.composite
def gold_sentence(draw: st.DrawFn, labels: list[str]) -> list[str]:
    """Valid IOB2, IOB1 (entities start with I-), valid IOBES where `labels` has it, or any labels at all."""
    style = draw(st.sampled_from(["random", "iob2", "iob1"] + ["iobes"] * ("S-PER" in labels)))
    if style == "random":
        return draw(st.lists(st.sampled_from(labels), min_size=1, max_size=10))
    spans = draw(st.lists(st.tuples(st.sampled_from([None, *TYPES]), st.integers(1, 3)), min_size=1, max_size=5))
    tags = []
    for typ, length in spans:
        tags += ["O"] * length if typ is None else [f"B-{typ}"] + [f"I-{typ}"] * (length - 1)
        if style == "iobes" and typ is not None:
            tags[-1] = f"S-{typ}" if length == 1 else f"E-{typ}"
    if style == "iob1":
        # IOB1 keeps B- only where an entity directly follows one of the same type.
        tags = [
            f"I-{tag[2:]}" if tag.startswith("B-") and (i == 0 or tags[i - 1][2:] != tag[2:]) else tag
            for i, tag in enumerate(tags)
        ]
    return tags


@st.composite
def batches(draw: st.DrawFn, labels: list[str]) -> tuple[list[list[str]], list[list[str]], Tensors]:
    """Gold and predicted sentences, and the same as model-shaped tensors.

    Each row gets a [CLS]-like ignored position, ignored sub-token positions after some words and
    padding; predictions there are a B- label, so reading them would change the score. Some sentences
    are split over two rows, the second marked as continuing the first.
    """
    gold = draw(st.lists(gold_sentence(labels), min_size=1, max_size=6))
    # The tags come from hypothesis; the prediction noise and the layout from a Random seeded by one draw,
    # which keeps each example fast while staying reproducible.
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    noise = rng.choice([0.0, 0.3, 0.6, 1.0])  # from all right to all random, so TP, FP and FN all occur
    pred = [[rng.choice(labels) if rng.random() < noise else tag for tag in sentence] for sentence in gold]
    junk = labels.index("B-PER")
    rows = []
    for g, p in zip(gold, pred):
        cut = rng.randrange(len(g))  # 0: the sentence stays in one row
        for k, (a, b) in enumerate([(0, len(g))] if cut == 0 else [(0, cut), (cut, len(g))]):
            target_row, pred_row = [IGNORE], [junk]
            for word in range(a, b):
                sub_tokens = rng.choice([0, 0, 1, 2])
                target_row += [labels.index(g[word])] + [IGNORE] * sub_tokens
                pred_row += [labels.index(p[word])] + [junk] * sub_tokens
            rows.append((target_row, pred_row, k > 0))
    width = max(len(t) for t, _, _ in rows) + rng.randrange(3)
    target = torch.tensor([t + [IGNORE] * (width - len(t)) for t, _, _ in rows])
    preds = torch.tensor([p + [junk] * (width - len(p)) for _, p, _ in rows])
    continues = torch.tensor([c for _, _, c in rows])
    return gold, pred, (preds, target, continues)


def seqeval_scores(
    gold: list[list[str]], pred: list[list[str]], mode: str, types: list[str], scheme: str = "IOB2"
) -> dict[str, float]:
    """seqeval's scores under EntityMetric's keys; types seqeval does not list (no entity either side) are 0."""
    kwargs = {"mode": "strict", "scheme": {"IOB2": IOB2, "IOBES": IOBES}[scheme]} if mode == "strict" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns on zero divisions, which score 0.0 here too
        expected = {
            "precision": precision_score(gold, pred, **kwargs),
            "recall": recall_score(gold, pred, **kwargs),
            "f1": f1_score(gold, pred, **kwargs),
        }
        report = classification_report(gold, pred, output_dict=True, **kwargs)
    for t in types:
        row = report.get(t, {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
        expected |= {f"precision_{t}": row["precision"], f"recall_{t}": row["recall"], f"f1_{t}": row["f1-score"]}
        expected[f"support_{t}"] = row["support"]
    return {key: float(value) for key, value in expected.items()}


def scores(metric: EntityMetric) -> dict[str, float]:
    return {key: value.item() for key, value in metric.compute().items()}


def check_equals_seqeval(data: st.DataObject, mode: str, scheme: str) -> None:
    labels = LABELS[scheme]
    gold, pred, (preds, target, continues) = data.draw(batches(labels))
    metric = EntityMetric(labels, mode=mode)
    metric.update(preds, target, continues)
    # float64 ratios in seqeval's order of operations, so equality is exact, not approximate
    assert scores(metric) == seqeval_scores(gold, pred, mode, metric.entity_types, scheme)


# default mode reads every prefix, so IOBES labels test it fully
@pytest.mark.parametrize(("mode", "scheme"), [("default", "IOBES"), ("strict", "IOB2")])
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_scores_equal_seqeval_exactly(mode: str, scheme: str, data: st.DataObject) -> None:
    check_equals_seqeval(data, mode, scheme)


# strict mode's scheme follows the labels; IOBES shares all but the closing rule with IOB2, so fewer examples
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_strict_iobes_scores_equal_seqeval_exactly(data: st.DataObject) -> None:
    check_equals_seqeval(data, "strict", "IOBES")


def test_plain_labels_score_after_conversion_to_iob2() -> None:
    def to_iob2(tags: list[str]) -> list[str]:
        return [t if t == "O" else ("I-" if i and tags[i - 1] == t else "B-") + t for i, t in enumerate(tags)]

    labels = ["O", "B-AUTHOR", "I-AUTHOR", "B-DATE", "I-DATE"]
    gold = [to_iob2(["AUTHOR", "AUTHOR", "O", "DATE"]), to_iob2(["DATE", "DATE", "AUTHOR"])]
    pred = [to_iob2(["AUTHOR", "O", "O", "DATE"]), to_iob2(["DATE", "DATE", "AUTHOR"])]
    target = torch.tensor([[labels.index(t) for t in s] + [IGNORE] * (4 - len(s)) for s in gold])
    preds = torch.tensor([[labels.index(t) for t in s] + [0] * (4 - len(s)) for s in pred])
    for mode in MODES:
        metric = EntityMetric(labels, mode=mode)
        metric.update(preds, target)
        result = scores(metric)
        assert result == seqeval_scores(gold, pred, mode, ["AUTHOR", "DATE"])
        assert (result["support_AUTHOR"], result["support_DATE"], result["f1"]) == (2, 2, 0.75)
    # seqeval would read the unconverted "AUTHOR" as prefix "A", type "UTHOR"; the metric refuses it
    with pytest.raises(ValueError, match="IOB2"):
        EntityMetric(["O", "AUTHOR", "DATE"])


@pytest.mark.parametrize("mode", MODES)
def test_sentence_split_over_rows_scores_as_one_sentence(mode: str) -> None:
    labels = BIO
    words = [labels.index(t) for t in ["B-PER", "I-PER", "I-PER", "O", "B-LOC"]]
    whole = torch.tensor([[IGNORE, *words, IGNORE]])
    # two windows, cut inside the PER entity; ignored positions stand for [CLS], [SEP] and context words
    windows = torch.tensor([[IGNORE, *words[:2], IGNORE, IGNORE, IGNORE], [IGNORE, IGNORE, *words[2:], IGNORE]])
    expected = EntityMetric(labels, mode=mode)
    expected.update(whole, whole)
    split = EntityMetric(labels, mode=mode)
    split.update(windows, windows, continues=torch.tensor([False, True]))
    assert scores(split) == scores(expected)
    assert scores(split)["support_PER"] == 1 and scores(split)["f1"] == 1.0
    # without `continues` the cut changes the entities, so the flag is what joins them
    unjoined = EntityMetric(labels, mode=mode)
    unjoined.update(windows, windows)
    assert scores(unjoined)["support_PER"] == {"default": 2, "strict": 1}[mode]


def random_batch(generator: torch.Generator, n_labels: int) -> tuple[torch.Tensor, torch.Tensor]:
    target = torch.randint(0, n_labels, (16, 12), generator=generator)
    target[torch.rand(target.shape, generator=generator) < 0.2] = IGNORE
    wrong = torch.rand(target.shape, generator=generator) < 0.3
    preds = torch.where(wrong, torch.randint(0, n_labels, target.shape, generator=generator), target)
    return preds.clamp(min=0), target  # a prediction is a label id even where the target is ignored


@pytest.mark.parametrize("mode", MODES)
def test_summed_states_equal_one_metric_over_all_data(mode: str) -> None:
    labels = BIO
    generator = torch.Generator().manual_seed(0)
    batches = [random_batch(generator, len(labels)) for _ in range(4)]
    whole, first_half, second_half = (EntityMetric(labels, mode=mode) for _ in range(3))
    for i, (preds, target) in enumerate(batches):
        whole.update(preds, target)
        (first_half if i < 2 else second_half).update(preds, target)
    # what a sum-reduction across two processes does
    first_half.merge_state(second_half)
    assert scores(first_half) == scores(whole)
    assert scores(whole)["f1"] > 0 and scores(whole)["precision"] < 1  # the data has hits and misses


def test_decode_entities_default_and_strict() -> None:
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    metric = EntityMetric(labels)
    tags = ["I-PER", "I-PER", "B-LOC", "I-PER", "O", "B-PER"]  # the last word is a second sentence
    ids = torch.tensor([labels.index(t) for t in tags])
    sentence_start = torch.tensor([True, False, False, False, False, True])
    prefix, typ = metric.prefix_of_label, metric.type_of_label
    decoded = {mode: [t.tolist() for t in decode_entities(ids, sentence_start, prefix, typ, mode)] for mode in MODES}
    per, loc = metric.entity_types.index("PER"), metric.entity_types.index("LOC")
    # default: an I- after O starts an entity, and a type change ends one
    assert decoded["default"] == [[0, 2, 3, 5], [1, 2, 3, 5], [per, loc, per, per]]
    # strict: I- without its B- is no entity
    assert decoded["strict"] == [[2, 5], [2, 5], [loc, per]]
    # strict with IOBES labels: B- I- needs its E-, S- stands alone
    metric = EntityMetric(LABELS["IOBES"], mode="strict")
    tags = ["B-PER", "I-PER", "O", "B-PER", "I-PER", "E-PER", "S-LOC", "I-LOC"]
    ids = torch.tensor([LABELS["IOBES"].index(t) for t in tags])
    one_sentence = torch.arange(len(tags)) == 0
    starts, ends, _ = decode_entities(ids, one_sentence, metric.prefix_of_label, metric.type_of_label, "strict")
    assert (starts.tolist(), ends.tolist()) == ([3, 6], [5, 6])


def test_bad_modes_and_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        EntityMetric(BIO, mode="lenient")
    with pytest.raises(ValueError, match="differ in shape"):
        EntityMetric(BIO).update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu() -> None:
    generator = torch.Generator().manual_seed(1)
    preds, target = random_batch(generator, len(BIO))
    for mode in MODES:
        on_cpu, on_cuda = EntityMetric(BIO, mode=mode), EntityMetric(BIO, mode=mode).to("cuda")
        on_cpu.update(preds, target)
        on_cuda.update(preds.cuda(), target.cuda())
        assert scores(on_cuda) == scores(on_cpu)
