"""Evaluate's entity scores: precision, recall and F1 per type of exact spans (nested entities included), checked
against seqeval's classification_report wherever both sides are flat, seqeval's strict mode there too, and the
same scores over the entities that sit inside another."""

from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

import torch
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2, IOBES

from lit_ner.data.align import IGNORE
from lit_ner.data.schemes import convert_tags, entity_types, inside
from lit_ner.metrics import E, EntityMetric, S

Spans = Sequence[Sequence[tuple[str, int, int]]]  # each sentence's entities: (type, start, end exclusive)
Tags = Sequence[Sequence[str]]
Table = dict[str, dict[str, float]]  # {type or "micro avg": {precision, recall, f1, support}}
# the checks below fail only on a defect in lit_ner, never on bad input
BUG = "a lit_ner defect, not your input: please report it with this message"


def overlapping(entities: Sequence[tuple[str, int, int]]) -> bool:
    """Whether two of a sentence's entities share a word (nested or crossing): what IOB2 tags cannot hold."""
    ordered = sorted((s, e) for _, s, e in entities)
    return any(b[0] < a[1] for a, b in zip(ordered, ordered[1:]))


def inner(entities: Sequence[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """The entities of a sentence that sit inside another (as `nested_count` counts them)."""
    return [e for e in entities if inside(e, entities)]


def span_metric(labels: Sequence[str], gold: Spans, pred: Spans) -> EntityMetric:
    """EntityMetric over exact (type, start, end) matches of each sentence's entities."""
    metric = EntityMetric(labels)
    index = {t: k for k, t in enumerate(metric.entity_types)}

    def rows(spans: Spans) -> torch.Tensor:
        found = [(n, s, e, index[t]) for n, entities in enumerate(spans) for t, s, e in entities]
        return torch.tensor(found, dtype=torch.long).reshape(-1, 4)

    metric.update(rows(pred), rows(gold), entities=True)
    return metric


def table(metric: EntityMetric) -> Table:
    """{type: precision, recall, f1, support} and "micro avg" of a metric."""
    scores = {k: float(v) for k, v in metric.compute().items()}
    out = {t: {m: scores[f"{m}_{t}"] for m in ("precision", "recall", "f1")} | {"support": int(scores[f"support_{t}"])}
           for t in metric.entity_types}  # fmt: skip
    out["micro avg"] = {m: scores[m] for m in ("precision", "recall", "f1")} | {"support": sum(
        row["support"] for row in out.values())}  # fmt: skip
    return out


def tag_metric(labels: Sequence[str], gold: Tags, pred: Tags, mode: str, chunk: int = 512) -> EntityMetric:
    """EntityMetric in `mode` over word tags, a sentence a row (the words' own tags: no sub-tokens, no windows)."""
    metric = EntityMetric(labels, mode=mode)
    label_id = {label: i for i, label in enumerate(labels)}
    for first in range(0, len(gold), chunk):
        rows = range(first, min(first + chunk, len(gold)))
        width = max([len(gold[i]) for i in rows] + [1])
        target = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        preds = torch.zeros((len(rows), width), dtype=torch.long)
        for n, i in enumerate(rows):
            target[n, : len(gold[i])] = torch.tensor([label_id[t] for t in gold[i]], dtype=torch.long)
            preds[n, : len(pred[i])] = torch.tensor([label_id[t] for t in pred[i]], dtype=torch.long)
        metric.update(preds, target)
    return metric


def seqeval_check(ours: Table, gold: Tags, pred: Tags, mode: str, iobes: bool) -> None:
    """Stop if seqeval's classification_report on the same tags gives other numbers than `ours`."""
    if mode == "strict":
        theirs = classification_report(gold, pred, output_dict=True, zero_division=0, mode="strict",
                                       scheme=IOBES if iobes else IOB2)  # fmt: skip
    else:
        theirs = classification_report(gold, pred, output_dict=True, zero_division=0)
    for name, row in ours.items():
        # seqeval lists only the types that occur; a type that never does scores 0 everywhere
        other = theirs.get(name, {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
        other = {"f1": other["f1-score"]} | {k: other[k] for k in ("precision", "recall", "support")}
        if any(row[k] != other[k] for k in row):  # exactly: our metric reproduces seqeval to the last bit
            raise RuntimeError(f"{mode} scores of {name} differ: lit_ner {row}, seqeval {other} ({BUG})")


def entity_scores(
    labels: Sequence[str], gold: Spans, pred: Spans, gold_tags: Tags, pred_tags: Tags, tagger: bool
) -> tuple[dict[str, Table], str]:
    """The scores evaluate reports, and what they were checked against. "default": exact spans (seqeval's default
    mode where both sides are flat); "strict": seqeval's strict mode, where both are flat; "nested": exact spans of
    the entities that sit inside another, where there are any. `tagger`: the predicted tags are the head's own (a
    span head's are laid from its entities, in IOB2)."""
    # by EntityMetric's own rule (any E- or S- label), not from the gold: gold with only B/I/O tags, or no entity
    # at all, may still meet a model's IOBES predictions
    iobes = bool((EntityMetric(labels).prefix_of_label & (E | S)).any())
    scores = {"default": table(span_metric(labels, gold, pred))}
    if any(map(overlapping, gold)) or any(map(overlapping, pred)):
        checked = "exact spans, nested entities included (seqeval reads flat tags only: no seqeval check)"
    else:
        pred_tags = pred_tags if tagger or not iobes else [convert_tags(t, "IOB2", "IOBES") for t in pred_tags]
        seqeval_check(scores["default"], gold_tags, pred_tags, "default", iobes)
        scores["strict"] = table(tag_metric(labels, gold_tags, pred_tags, "strict"))
        seqeval_check(scores["strict"], gold_tags, pred_tags, "strict", iobes)
        checked = f"equal to seqeval {version('seqeval')} classification_report on the same tags"
    if any(map(inner, gold)) or any(map(inner, pred)):
        scores["nested"] = nested_table(entity_types(labels), gold, pred)
    return scores, checked


def nested_table(types: Sequence[str], gold: Spans, pred: Spans) -> Table:
    """Exact-span scores of the entities that sit inside another: recall, the share of the gold ones the model
    found (among all its entities); precision, the share of its own entities inside another of its entities that
    are gold (among all gold entities); F1 of the two. `support`: the gold entities inside another."""
    counts = {t: [0, 0, 0, 0] for t in types}  # found, inner gold, right, inner predicted
    for g, p in zip(gold, pred):
        everything, predicted = set(g), set(p)
        for t, s, e in inner(g):
            counts[t][0] += (t, s, e) in predicted
            counts[t][1] += 1
        for t, s, e in inner(p):
            counts[t][2] += (t, s, e) in everything
            counts[t][3] += 1

    def row(found: int, inner_gold: int, right: int, inner_pred: int) -> dict[str, float]:
        recall, precision = found / inner_gold if inner_gold else 0.0, right / inner_pred if inner_pred else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1, "support": inner_gold}

    out = {t: row(*c) for t, c in counts.items()}
    out["micro avg"] = row(*(sum(c[k] for c in counts.values()) for k in range(4)))
    return out
