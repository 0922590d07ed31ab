"""lit_ner.analysis: SemEval scores equal to nervaluate's, kinds of error, bootstrap intervals, error records."""

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report, f1_score
from seqeval.metrics.sequence_labeling import get_entities

from lit_ner.analysis import KINDS, SCHEMES, bootstrap_f1, error_kinds, error_records, pair_entities, semeval_scores
from lit_ner.data.schemes import entity_spans

TYPES = ["PER", "LOC", "creative-work"]  # a hyphen inside a type must stay part of the type
LABELS = ["O"] + [f"{p}-{t}" for t in TYPES for p in "BI"]

nervaluate = pytest.importorskip("nervaluate", reason="nervaluate, the reference of the SemEval scores, is a dev extra")


@st.composite
def corpora(draw: st.DrawFn) -> tuple[list[list[str]], list[list[str]]]:
    """Gold sentences (valid IOB2 or any labels) and predictions from them with boundary, type and other noise."""
    gold = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            gold.append(draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=12)))
            continue
        tags: list[str] = []
        for typ, length in draw(st.lists(st.tuples(st.sampled_from([None, *TYPES]), st.integers(1, 4)), max_size=5)):
            tags += ["O"] * length if typ is None else [f"B-{typ}"] + [f"I-{typ}"] * (length - 1)
        gold.append(tags or ["O"])
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))  # noise from one draw keeps each example fast
    noise = rng.choice([0.0, 0.2, 0.5, 1.0])
    pred = [[rng.choice(LABELS) if rng.random() < noise else tag for tag in sentence] for sentence in gold]
    return gold, pred


def S(tags: list[list[str]]) -> list[list[tuple[str, int, int]]]:
    """Each sentence's entities as lit_ner.analysis reads them: seqeval's default reading of the tags, end exclusive."""
    return [entity_spans(sentence) for sentence in tags]


def nervaluate_scores(gold: list[list[str]], pred: list[list[str]], loader: str) -> dict:
    """nervaluate's results in semeval_scores' shape."""
    if loader == "dict":  # the entities seqeval finds, so only the matching rules are compared
        gold, pred = ([[{"label": t, "start": s, "end": e} for t, s, e in get_entities(x)] for x in xs]
                      for xs in (gold, pred))  # fmt: skip
    results = nervaluate.Evaluator(gold, pred, tags=TYPES, loader=loader).evaluate()
    return {
        "overall": {scheme: vars(r) for scheme, r in results["overall"].items()},
        "by_type": {t: {scheme: vars(r) for scheme, r in rs.items()} for t, rs in results["entities"].items()},
    }


@pytest.mark.parametrize("loader", ["list", "dict"])  # nervaluate reading the tags itself, or seqeval's entities
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=corpora())
def test_semeval_scores_equal_nervaluate(loader: str, data: tuple[list[list[str]], list[list[str]]]) -> None:
    gold, pred = data
    # exactly: the same counts and the same float operations
    assert semeval_scores(S(gold), S(pred)) == nervaluate_scores(gold, pred, loader)


def test_a_long_entity_needs_one_percent_of_its_words_to_overlap() -> None:
    gold = [["B-LOC"] + ["I-LOC"] * 149, ["B-PER"] + ["I-PER"] * 99]
    pred = [["O"] * 149 + ["B-LOC"], ["O"] * 99 + ["B-PER"]]  # 1 word of 150 (no overlap), 1 of 100 (overlap)
    ours = semeval_scores(S(gold), S(pred))
    assert ours == nervaluate_scores(gold, pred, "list")
    assert ours["by_type"]["LOC"]["partial"]["partial"] == 0 and ours["by_type"]["PER"]["partial"]["partial"] == 1


def test_ent_type_takes_the_first_of_equally_close_gold_entities() -> None:
    gold = [["B-PER", "I-PER", "O", "B-PER", "I-PER"]]
    pred = [["O", "B-PER", "I-PER", "I-PER", "B-PER"]]  # words 1-3 are 3 boundary moves from either gold entity
    ours = semeval_scores(S(gold), S(pred))
    assert ours == nervaluate_scores(gold, pred, "list")
    assert ours["overall"]["ent_type"]["correct"] == 2  # the first takes PER 0-1, which leaves PER 3-4 to word 4


def test_semeval_schemes_on_a_worked_example() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O"]]
    pred = [["B-PER", "O", "O", "B-PER", "B-LOC"]]  # PER cut short, LOC read as PER, a spurious LOC
    overall = semeval_scores(S(gold), S(pred))["overall"]
    outcomes = ("correct", "incorrect", "partial", "missed", "spurious")
    counts = {s: tuple(overall[s][k] for k in outcomes) for s in SCHEMES}
    assert counts == {"strict": (0, 2, 0, 0, 1), "exact": (1, 1, 0, 0, 1), "partial": (1, 0, 1, 0, 1),
                      "ent_type": (1, 1, 0, 0, 1)}  # fmt: skip
    assert overall["partial"]["precision"] == (1 + 0.5) / 3 and overall["partial"]["recall"] == (1 + 0.5) / 2
    assert json.loads(json.dumps(semeval_scores(S(gold), S(pred)))) == semeval_scores(S(gold), S(pred))


def test_error_kinds_name_what_is_wrong() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-PER", "O", "B-LOC", "I-LOC", "O"]]
    pred = [["B-PER", "O", "O", "B-PER", "O", "O", "B-LOC", "O", "B-PER", "I-PER"]]
    kinds = error_kinds(S(gold), S(pred))
    # PER cut short: boundary; LOC as PER: type; PER missed; LOC spurious; LOC overlapped by a longer PER: both
    assert kinds["overall"] == {"boundary": 1, "type": 1, "boundary_and_type": 1, "missed": 1, "spurious": 1}
    assert kinds["by_type"] == {
        "LOC": {"boundary": 0, "type": 1, "boundary_and_type": 1, "missed": 0, "spurious": 1},
        "PER": {"boundary": 1, "type": 0, "boundary_and_type": 0, "missed": 1, "spurious": 0},
    }


def test_pairing_prefers_the_same_span_then_the_most_shared_words() -> None:
    golds = [("PER", 0, 4), ("LOC", 5, 6)]
    preds = [("PER", 0, 1), ("ORG", 2, 4), ("LOC", 5, 6), ("LOC", 7, 8)]
    assert pair_entities(golds, preds) == ([(0, 1), (1, 2)], [], [0, 3])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=corpora())
def test_every_entity_is_counted_once(data: tuple[list[list[str]], list[list[str]]]) -> None:
    gold, pred = data
    kinds, records = error_kinds(S(gold), S(pred)), error_records(gold, S(gold), S(pred))  # the tags stand in for the words
    assert sum(kinds["overall"].values()) == sum(r["errors"] for r in records)
    for kind in KINDS:
        assert kinds["overall"][kind] == sum(k[kind] for k in kinds["by_type"].values())
    for r in records:
        golds, preds = r["gold"], r["predicted"]
        n = r["sentence"]
        assert (len(golds), len(preds)) == (len(get_entities(gold[n])), len(get_entities(pred[n])))
        paired = [e["kind"] for e in golds if e["kind"] not in ("missed", "correct")]
        assert sorted(paired) == sorted(e["kind"] for e in preds if e["kind"] not in ("spurious", "correct"))
    wrong = sum(len(set(get_entities(g)) ^ set(get_entities(p))) > 0 for g, p in zip(gold, pred))
    assert len(records) == wrong  # a sentence is recorded exactly when its entities differ


def test_error_records_mark_entities_and_come_worst_first() -> None:
    tokens = [["Ann", "met", "Bob"], ["in", "Paris"], ["Ann", "Lee", "in", "Rome"]]
    gold = [["B-PER", "O", "B-PER"], ["O", "B-LOC"], ["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "O", "O"], ["O", "B-LOC"], ["B-PER", "O", "B-LOC", "I-LOC"]]
    records = error_records(tokens, S(gold), S(pred), scores=[[0.9], [0.8], [0.7, 0.6]])
    assert [(r["sentence"], r["errors"]) for r in records] == [(2, 2), (0, 1)]  # the right sentence is left out
    assert records[0]["gold"] == [
        {"type": "PER", "start": 0, "end": 2, "text": "Ann Lee", "kind": "boundary"},
        {"type": "LOC", "start": 3, "end": 4, "text": "Rome", "kind": "boundary"},
    ]
    assert records[0]["predicted"][1] == {"type": "LOC", "start": 2, "end": 4, "text": "in Rome", "kind": "boundary",
                                          "score": 0.6}  # fmt: skip
    assert records[1]["gold"][1]["kind"] == "missed" and records[1]["predicted"][0]["score"] == 0.9
    with pytest.raises(ValueError, match="sentence 0: 2 scores for 1 predicted"):
        error_records(tokens, S(gold), S(pred), scores=[[0.9, 0.1], [0.8], [0.7, 0.6]])


def noisy(n: int, noise: float, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    rng = random.Random(seed)
    gold = [[rng.choice(LABELS) for _ in range(12)] for _ in range(n)]
    return gold, [[rng.choice(LABELS) if rng.random() < noise else t for t in s] for s in gold]


def test_bootstrap_f1_is_seqeval_f1_with_an_interval_around_it() -> None:
    gold, pred = noisy(400, 0.2, seed=1)
    intervals = bootstrap_f1(S(gold), S(pred), samples=500)
    assert intervals["micro"]["f1"] == pytest.approx(f1_score(gold, pred), abs=1e-12)
    report = classification_report(gold, pred, output_dict=True)
    for t in TYPES:
        assert intervals[t]["f1"] == pytest.approx(report[t]["f1-score"], abs=1e-12)
    for row in intervals.values():
        assert row["low"] < row["f1"] < row["high"]
    assert bootstrap_f1(S(gold), S(pred), samples=500) == intervals  # seeded
    assert bootstrap_f1(S(gold), S(pred), samples=500, seed=1) != intervals
    wider = bootstrap_f1(S(gold[:40]), S(pred[:40]), samples=500)["micro"]
    assert wider["high"] - wider["low"] > intervals["micro"]["high"] - intervals["micro"]["low"]  # less data
    assert json.loads(json.dumps(intervals)) == intervals


def test_bootstrap_of_perfect_predictions_is_one() -> None:
    gold, _ = noisy(30, 0.0, seed=2)
    assert all(row == {"f1": 1.0, "low": 1.0, "high": 1.0} for row in bootstrap_f1(S(gold), S(gold), samples=100).values())
    assert bootstrap_f1(S([["O"]]), S([["O"]])) == {"micro": {"f1": 0.0, "low": 0.0, "high": 0.0}}
