"""Entity errors people can look at and scores they can trust: SemEval-2013 schemes, kinds of error, bootstrap
intervals of F1 and one record per sentence with errors. Pure functions over each sentence's entities as (type,
first word, end word exclusive), nested or flat (lit_ner.heads.EntitySpan's first three fields), JSON-ready."""

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
Span = tuple[str, int, int]  # (type, first word, end word exclusive)
Spans = Sequence[Sequence[Span]]  # each sentence's entities, in reading order
SCHEMES = ("strict", "exact", "partial", "ent_type")
KINDS = ("boundary", "type", "boundary_and_type", "missed", "spurious")  # the wrong entities, by what is wrong


def _overlaps(pred: Span, gold: Span) -> bool:
    """nervaluate's overlap (min_overlap_percentage=1): the shared words are at least 1 % of the gold entity's."""
    shared = min(pred[2], gold[2]) - max(pred[1], gold[1])
    return shared > 0 and 100 * shared >= gold[2] - gold[1]


def _judge(scheme: str, pred: Span, golds: list[Span], used: set[int]) -> tuple[str, int | None]:
    """nervaluate's verdict on one prediction against the gold entities not yet used: (outcome, gold it uses)."""
    first_overlap = None  # incorrect (partial) when no better gold comes
    closest = None  # ent_type: (boundary distance, gold) of the same-type overlapping gold nearest in boundaries
    for i, gold in enumerate(golds):
        if i in used:
            continue
        same_span = gold[1:] == pred[1:]
        if same_span and (scheme == "exact" or (scheme == "strict" and gold[0] == pred[0])):
            return "correct", i
        if not _overlaps(pred, gold):
            continue
        if scheme == "partial" and same_span:
            return "correct", i
        if scheme == "ent_type" and gold[0] == pred[0]:
            distance = abs(pred[1] - gold[1]) + abs(pred[2] - gold[2])
            if closest is None or distance < closest[0]:  # the first on a tie
                closest = (distance, i)
            continue
        if first_overlap is None:
            first_overlap = i
    if closest is not None:
        return "correct", closest[1]
    if first_overlap is not None:
        return ("partial" if scheme == "partial" else "incorrect"), first_overlap
    return "spurious", None


def _scheme_counts(scheme: str, gold: list[list[Span]], pred: list[list[Span]]) -> Counter:
    """correct, incorrect, partial, spurious and missed of one scheme over all sentences."""
    counts: Counter = Counter(dict.fromkeys(("correct", "incorrect", "partial", "missed", "spurious"), 0))
    for golds, preds in zip(gold, pred):
        used: set[int] = set()
        for p in preds:  # in order: an earlier prediction takes the gold entity first, as in nervaluate
            outcome, i = _judge(scheme, p, golds, used)
            counts[outcome] += 1
            if i is not None:
                used.add(i)
        counts["missed"] += len(golds) - len(used)
    return counts


def _scheme_scores(scheme: str, counts: Counter) -> dict[str, Any]:
    """The counts with possible, actual, precision, recall and F1, by nervaluate's formulas (same float steps)."""
    c, i, p, m, s = (counts[k] for k in ("correct", "incorrect", "partial", "missed", "spurious"))
    actual, possible = c + i + p + s, c + i + p + m
    hits = c + 0.5 * p if scheme in ("partial", "ent_type") else c  # half a point for a partial match
    precision = hits / actual if actual > 0 else 0
    recall = hits / possible if possible > 0 else 0
    f1 = 2 * (precision * recall) / (precision + recall) if (precision + recall) > 0 else 0
    return {"correct": c, "incorrect": i, "partial": p, "missed": m, "spurious": s, "possible": possible,
            "actual": actual, "precision": float(precision), "recall": float(recall), "f1": float(f1)}  # fmt: skip


def semeval_scores(gold: Spans, pred: Spans) -> dict[str, Any]:
    """SemEval-2013 task 9.1's strict, exact, partial and ent_type scores, equal to nervaluate's:
    `{"overall": {scheme: counts and scores}, "by_type": {type: {scheme: ...}}}`. A type's scores see only the
    entities of that type, gold and predicted (so a type error is one missed and one spurious there)."""
    gold_spans, pred_spans = [list(g) for g in gold], [list(p) for p in pred]
    types = sorted({t for spans in (*gold_spans, *pred_spans) for t, _, _ in spans})

    def scores(golds: list[list[Span]], preds: list[list[Span]]) -> dict[str, Any]:
        return {scheme: _scheme_scores(scheme, _scheme_counts(scheme, golds, preds)) for scheme in SCHEMES}

    def of_type(spans: list[list[Span]], t: str) -> list[list[Span]]:
        return [[e for e in sentence if e[0] == t] for sentence in spans]

    return {
        "overall": scores(gold_spans, pred_spans),
        "by_type": {t: scores(of_type(gold_spans, t), of_type(pred_spans, t)) for t in types},
    }


def pair_entities(golds: list[Span], preds: list[Span]) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """(gold, predicted) index pairs, missed gold indices, spurious predicted indices of one sentence. Entities
    with the same span pair first (those of the same type before others, where nested data has two entities on
    one span); then each gold entity left, in order, pairs with the unpaired prediction sharing the most words with
    it (the first on a tie). The confusion matrix of lit_ner.evaluate pairs alike."""
    pairs: list[tuple[int, int]] = []
    left = list(range(len(preds)))
    for same_type in (True, False):
        for i, gold in enumerate(golds):
            if any(i == g for g, _ in pairs):
                continue
            j = next((j for j in left if preds[j][1:] == gold[1:] and (preds[j][0] == gold[0]) >= same_type), None)
            if j is not None:
                pairs.append((i, j))
                left.remove(j)
    paired_gold = {i for i, _ in pairs}
    for i, (_, start, end) in enumerate(golds):
        if i in paired_gold:
            continue
        shared = [min(end, preds[j][2]) - max(start, preds[j][1]) for j in left]
        best = max(range(len(left)), key=shared.__getitem__, default=None)
        if best is not None and shared[best] > 0:
            pairs.append((i, left.pop(best)))
            paired_gold.add(i)
    missed = [i for i in range(len(golds)) if i not in paired_gold]
    return sorted(pairs), missed, left


def pair_kind(gold: Span, pred: Span) -> str:
    """correct, boundary (type right), type (span right) or boundary_and_type, of a gold and its paired prediction."""
    right_type, right_span = gold[0] == pred[0], gold[1:] == pred[1:]
    return {(True, True): "correct", (True, False): "boundary", (False, True): "type"}.get(
        (right_type, right_span), "boundary_and_type"
    )


def _sentence_kinds(golds: list[Span], preds: list[Span]) -> tuple[list[str], list[str]]:
    """The kind of each gold and each predicted entity of one sentence (a pair's two entities share it)."""
    pairs, missed, spurious = pair_entities(golds, preds)
    gold_kinds, pred_kinds = ["missed"] * len(golds), ["spurious"] * len(preds)
    for i, j in pairs:
        gold_kinds[i] = pred_kinds[j] = pair_kind(golds[i], preds[j])
    return gold_kinds, pred_kinds


def error_kinds(gold: Spans, pred: Spans) -> dict[str, Any]:
    """How the entities are wrong, `{"overall": {kind: n}, "by_type": {type: {kind: n}}}` over KINDS (pairing as in
    pair_entities). A pair counts once, under its gold type; a spurious prediction under its predicted type."""
    overall = dict.fromkeys(KINDS, 0)
    by_type: dict[str, dict[str, int]] = {}
    for golds, preds in zip(gold, pred):
        gold_kinds, pred_kinds = _sentence_kinds(list(golds), list(preds))
        wrong = [(g[0], k) for g, k in zip(golds, gold_kinds) if k != "correct"]
        wrong += [(p[0], k) for p, k in zip(preds, pred_kinds) if k == "spurious"]
        for type_, kind in wrong:
            overall[kind] += 1
            by_type.setdefault(type_, dict.fromkeys(KINDS, 0))[kind] += 1
    return {"overall": overall, "by_type": dict(sorted(by_type.items()))}


def _entity_counts(gold: Spans, pred: Spans) -> tuple[list[str], np.ndarray]:
    """The entity types, and (sentences, types, 3) counts of exact-match true positives, predicted and gold entities."""
    entities = [(set(g), set(p)) for g, p in zip(gold, pred)]
    types = sorted({t for pair in entities for spans in pair for t, _, _ in spans})
    index = {t: k for k, t in enumerate(types)}
    counts = np.zeros((len(gold), len(types), 3), dtype=np.int64)
    for n, (golds, preds) in enumerate(entities):
        for column, spans in enumerate((golds & preds, preds, golds)):
            for type_, _, _ in spans:
                counts[n, index[type_], column] += 1
    return types, counts


def _f1(counts: np.ndarray) -> np.ndarray:
    """F1 = 2 tp / (predicted + gold) over the last axis (tp, predicted, gold); 0 where nothing is there."""
    tp, total = 2 * counts[..., 0], counts[..., 1] + counts[..., 2]
    return np.divide(tp, total, out=np.zeros(tp.shape), where=total > 0)


def bootstrap_f1(gold: Spans, pred: Spans, samples: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Percentile bootstrap interval of the exact-match entity F1 (seqeval's default), micro and per type, from
    `samples` resamplings of the sentences: `{"micro": {"f1", "low", "high"}, type: {...}}`. Same seed, same result."""
    types, counts = _entity_counts(gold, pred)
    n = len(gold)
    counts = counts.reshape(n, 3 * len(types)).astype(np.float64)  # floats: BLAS below, exact for such whole numbers
    draws = np.random.default_rng(seed).integers(0, n, size=(samples, n)) if n else np.zeros((samples, 0), int)
    # how often each resampling draws each sentence: one matrix product then sums every resampling's counts
    times = np.bincount((draws + n * np.arange(samples)[:, None]).ravel(), minlength=samples * n)
    totals = (times.reshape(samples, n) @ counts).reshape(samples, len(types), 3)
    full = counts.sum(0).reshape(len(types), 3)
    rows = {"micro": (_f1(full.sum(0)), _f1(totals.sum(1)))}
    rows |= {t: (_f1(full[k]), _f1(totals[:, k])) for k, t in enumerate(types)}
    tail = (1 - level) / 2
    return {
        name: {"f1": float(f1), "low": float(np.quantile(f1s, tail)), "high": float(np.quantile(f1s, 1 - tail))}
        for name, (f1, f1s) in rows.items()
    }


def _entity_dicts(words: list[str], spans: list[Span], kinds: list[str]) -> list[dict[str, Any]]:
    return [
        {"type": t, "start": s, "end": e, "text": " ".join(words[s:e]), "kind": k}
        for (t, s, e), k in zip(spans, kinds)
    ]


def error_records(
    tokens: Sequence[Sequence[str]], gold: Spans, pred: Spans, scores: list[list[float]] | None = None
) -> list[dict[str, Any]]:
    """One record per sentence with an error, most errors first: `{"sentence", "words", "gold", "predicted",
    "errors"}`, each entity `{"type", "start", "end" (exclusive word indices), "text", "kind"}` (a kind of KINDS or
    "correct"). `scores[i]` holds one score per predicted entity of sentence i, in `pred`'s order; it adds
    "score" to the predicted entities. "errors" counts wrong pairs once, plus missed and spurious entities."""
    records = []
    for n, (words, golds, preds) in enumerate(zip(tokens, gold, pred)):
        golds, preds = list(golds), list(preds)
        gold_kinds, pred_kinds = _sentence_kinds(golds, preds)
        errors = sum(k != "correct" for k in gold_kinds) + pred_kinds.count("spurious")
        if not errors:
            continue
        predicted = _entity_dicts(words, preds, pred_kinds)
        if scores is not None:
            if len(scores[n]) != len(preds):
                raise ValueError(f"sentence {n}: {len(scores[n])} scores for {len(preds)} predicted entities")
            for entity, score in zip(predicted, scores[n]):
                entity["score"] = float(score)
        records.append({"sentence": n, "words": list(words), "gold": _entity_dicts(words, golds, gold_kinds),
                        "predicted": predicted, "errors": errors})  # fmt: skip
    return sorted(records, key=lambda r: (-r["errors"], r["sentence"]))


def confusion(gold: Spans, pred: Spans, types: list[str], none: str) -> tuple[list[list[int]], list[list[int]]]:
    """Counts of (gold type, predicted type) entity pairs, paired as `pair_entities` pairs them, with `none` for
    missed (gold, none) and spurious (none, predicted) entities; and the counts of those pairs whose spans differ
    (matched by overlap only: a wrong boundary)."""
    index = {t: i for i, t in enumerate([*types, none])}
    counts = [[0] * len(index) for _ in index]
    overlaps = [[0] * len(index) for _ in index]
    for golds, preds in zip(gold, pred):
        golds, preds = list(golds), list(preds)
        pairs, missed, spurious = pair_entities(golds, preds)
        for i, j in pairs:
            counts[index[golds[i][0]]][index[preds[j][0]]] += 1
            overlaps[index[golds[i][0]]][index[preds[j][0]]] += golds[i][1:] != preds[j][1:]
        for i in missed:
            counts[index[golds[i][0]]][index[none]] += 1
        for j in spurious:
            counts[index[none]][index[preds[j][0]]] += 1
    return counts, overlaps


def worst_sentences(tokens: Sequence[Sequence[str]], gold: Spans, pred: Spans, n: int) -> list[dict[str, Any]]:
    """The n sentences with the most entity errors (missed + spurious in exact-span terms), entities bracketed (an
    entity inside another inside its brackets)."""

    def marked(words: Sequence[str], entities: Sequence[Span]) -> str:
        out = list(words)
        for _, start, _ in entities:
            out[start] = "[" + out[start]
        for type_, _, end in sorted(entities, key=lambda e: (-e[1], e[2])):  # on one word, the inner entity closes first
            out[end - 1] += "]" + type_  # after the opening marks: a one-word entity gets both
        return " ".join(out)

    errors = [len(set(g) ^ set(p)) for g, p in zip(gold, pred)]
    order = sorted((i for i, e in enumerate(errors) if e), key=lambda i: (-errors[i], i))[:n]
    return [{"sentence": i, "errors": errors[i], "gold": marked(tokens[i], gold[i]),
             "predicted": marked(tokens[i], pred[i])} for i in order]  # fmt: skip
