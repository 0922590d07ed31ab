"""Whether a model's scores mean what they say: expected calibration error, one temperature fitted on held-out
logits (Guo et al. 2017), reliability diagrams, and precision/recall against a score threshold."""

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from lit_ner.heads import Decoded

TEMPERATURES = (0.05, 20.0)  # beyond these a temperature flattens or sharpens the scores into noise


def _bins(scores: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin of each score in [0, 1], bins closed on the right as in Guo et al.: (0.2, 0.4]."""
    return np.clip(np.ceil(scores * bins).astype(int) - 1, 0, bins - 1)


def _reliability(scores: ArrayLike, correct: ArrayLike, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: the number of scores, their mean score and the fraction correct (0 in an empty bin)."""
    scores, correct = np.asarray(scores, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    if scores.shape != correct.shape or scores.ndim != 1 or not len(scores):
        raise ValueError(f"scores and correct: non-empty 1-d arrays of one length, not {scores.shape}, {correct.shape}")
    index = _bins(scores, bins)
    sizes = np.bincount(index, minlength=bins)
    filled = np.maximum(sizes, 1)
    return sizes, np.bincount(index, scores, bins) / filled, np.bincount(index, correct, bins) / filled


def expected_calibration_error(scores: ArrayLike, correct: ArrayLike, bins: int = 15) -> float:
    """Mean |fraction correct - mean score| over equal-width score bins, weighted by the bins' sizes (0 is perfect)."""
    sizes, confidence, accuracy = _reliability(scores, correct, bins)
    return float(np.sum(sizes * np.abs(accuracy - confidence)) / sizes.sum())


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, bounds: tuple[float, float] = TEMPERATURES) -> float:
    """The temperature T minimising the NLL of softmax(logits / T) on `labels` ((N, C) and (N,); labels of -100
    are ignored), found by L-BFGS on log T and kept within `bounds`."""
    logits, labels = logits.detach().double().reshape(-1, logits.shape[-1]), labels.detach().reshape(-1)
    return _fit_log_temperature(lambda log_t: torch.nn.functional.cross_entropy(logits / log_t.exp(), labels), bounds)


def _plot_reliability(axes: Any, scores: ArrayLike, correct: ArrayLike, bins: int, name: str) -> None:
    sizes, confidence, accuracy = _reliability(scores, correct, bins)
    edges = np.linspace(0, 1, bins + 1)
    shown = sizes > 0
    axes.bar(edges[:-1][shown], accuracy[shown], width=1 / bins, align="edge", color="#4c72b0", edgecolor="white",
             label="fraction correct")  # fmt: skip
    axes.bar(edges[:-1][shown], (confidence - accuracy)[shown], bottom=accuracy[shown], width=1 / bins, align="edge",
             color="#dd8452", alpha=0.45, label="gap to mean score")  # fmt: skip
    axes.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
    ece = expected_calibration_error(scores, correct, bins)
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="score", ylabel="fraction correct", title=f"{name} (ECE {ece:.3f})")
    axes.legend(loc="upper left", fontsize="small")


def reliability_diagram(
    scores: ArrayLike, correct: ArrayLike, bins: int = 15, title: str = "", calibrated: ArrayLike | None = None
) -> Figure:
    """Fraction correct against mean score per bin; with `calibrated` (the same items' scores after temperature
    scaling) a second panel shows them beside the first."""
    panels = [("before" if calibrated is not None else "scores", scores)]
    if calibrated is not None:
        panels.append(("after temperature scaling", calibrated))
    # a bare Figure renders with Agg and leaves pyplot (and a notebook's backend) alone
    figure = Figure(figsize=(4.5 * len(panels), 4.5), layout="constrained")
    for axes, (name, panel_scores) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        _plot_reliability(axes, panel_scores, correct, bins, name)
    figure.suptitle(title)
    return figure


def pr_curve(scores: ArrayLike, correct: ArrayLike, n_gold: int) -> dict[str, list[float]]:
    """Precision, recall and F1 when only the predicted entities scoring >= threshold are kept, at each distinct
    score as threshold, ascending: `{"threshold", "precision", "recall", "f1"}` lists. `correct` marks the
    predictions that match a gold entity; `n_gold` counts the gold entities."""
    scores, correct = np.asarray(scores, dtype=np.float64), np.asarray(correct, dtype=bool)
    if not len(scores):
        return {"threshold": [], "precision": [], "recall": [], "f1": []}
    order = np.argsort(-scores, kind="stable")
    kept_correct = np.cumsum(correct[order])
    # at a tie every prediction of that score is kept or dropped together: read the counts at a run's last item
    last = np.r_[scores[order][1:] != scores[order][:-1], True]
    thresholds, hits, kept = scores[order][last], kept_correct[last], np.flatnonzero(last) + 1
    precision = hits / kept
    recall = hits / n_gold if n_gold else np.zeros(len(hits))
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(len(total)), where=total > 0)
    return {k: v[::-1].tolist() for k, v in
            {"threshold": thresholds, "precision": precision, "recall": recall, "f1": f1}.items()}  # fmt: skip


def best_threshold(curve: Mapping[str, list[float]]) -> dict[str, float]:
    """The point of a pr_curve with the highest F1 (the lowest threshold on a tie): threshold, precision, recall, f1."""
    if not curve["threshold"]:
        raise ValueError("an empty curve: no predicted entity to keep or drop")
    best = int(np.argmax(curve["f1"]))
    return {k: float(curve[k][best]) for k in ("threshold", "precision", "recall", "f1")}


def plot_pr_curves(curves: Mapping[str, Mapping[str, list[float]]], title: str = "") -> Figure:
    """Precision against recall of each curve (per entity type, or micro), its best-F1 threshold marked."""
    figure = Figure(figsize=(6, 5), layout="constrained")
    axes = figure.add_subplot()
    for name, curve in curves.items():
        if not curve["threshold"]:
            continue
        (line,) = axes.plot(curve["recall"], curve["precision"], drawstyle="steps-post", label=name)
        best = best_threshold(curve)
        axes.plot(best["recall"], best["precision"], "o", color=line.get_color())
        axes.annotate(f"{best['threshold']:.2f}", (best["recall"], best["precision"]), textcoords="offset points",
                      xytext=(4, 4), fontsize="small", color=line.get_color())  # fmt: skip
    axes.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=title)
    axes.legend(title="best-F1 threshold marked", fontsize="small")
    return figure


# ---- Entity scores of a model's reading (lit_ner.inference), as evaluate measures them

Gold = Sequence[Sequence[tuple[str, int, int]]]  # each sentence's gold entities: (type, start, end exclusive)


def entity_confidences(decoded: Sequence[Decoded], temperature: float) -> list[list[float]]:
    """Each predicted entity's score had the logits been divided by `temperature` (from its evidence: for a tagger,
    the mean over its words of softmax(logits / T) at the word's tag; for a span head, softmax at its type)."""
    if any(sentence.evidence is None for sentence in decoded):
        raise ValueError("entity confidences need each entity's logits: read with aggregation='first'")
    return [[evidence.score(temperature) for evidence in sentence.evidence] for sentence in decoded]


def entity_outcomes(gold: Gold, decoded: Sequence[Decoded]) -> list[list[tuple[str, bool]]]:
    """Each predicted entity's (type, whether a gold entity has its type and span)."""
    return [[(e.type, e[:3] in set(g)) for e in sentence.entities] for g, sentence in zip(gold, decoded)]


def calibration_report(
    validation: tuple[Gold, Sequence[Decoded]],
    evaluated: tuple[Gold, Sequence[Decoded]],
    types: Sequence[str],
    bins: int = 15,
    seed: int = 0,
) -> tuple[dict[str, Any], Figure, Figure]:
    """How far entity scores are from how often entities are right, before and after temperature scaling, and the
    score threshold per type that maximises F1 on validation.

    `validation`, `evaluated`: (gold entities, Decoded) of each sentence. The temperature is fitted on the validation
    split (`entity_temperature`). `ece_before`/`ece_after` are measured where the temperature was not fitted but the
    data is alike: validation cut in two seeded halves, fitted on one and measured on the other, both ways, the mean.
    `evaluated` gives the same two numbers on the evaluated split with the whole split's temperature: a gap there
    that the halves do not show is a shift between validation and that split, which no one temperature undoes.
    Returns the report, the reliability diagram of the evaluated split and the validation precision/recall figure."""
    gold, decoded = validation
    temperature = entity_temperature(gold, decoded)
    order = list(range(len(gold)))
    random.Random(seed).shuffle(order)
    halves = [sorted(order[::2]), sorted(order[1::2])]
    before, after = [], []
    for fit, held in (halves, halves[::-1]):
        held_out = ([gold[i] for i in held], [decoded[i] for i in held])
        half_temperature = entity_temperature([gold[i] for i in fit], [decoded[i] for i in fit])
        before.append(entity_ece(*held_out, 1.0, bins))
        after.append(entity_ece(*held_out, half_temperature, bins))
    correct = [c for sentence in entity_outcomes(*evaluated) for _, c in sentence]
    raw = [s for sentence in entity_confidences(evaluated[1], 1.0) for s in sentence]
    scaled = [s for sentence in entity_confidences(evaluated[1], temperature) for s in sentence]
    measured = all(x is not None for x in before + after)
    report: dict[str, Any] = {
        "temperature": temperature, "bins": bins,
        "ece_before": float(np.mean(before)) if measured else None,
        "ece_after": float(np.mean(after)) if measured else None,
        "measured_on": "validation, fitted on one seeded half and measured on the other, both ways (the mean)",
        "evaluated": {"entities": len(correct),
                      "ece_before": expected_calibration_error(raw, correct, bins) if correct else None,
                      "ece_after": expected_calibration_error(scaled, correct, bins) if correct else None},
    }  # fmt: skip
    outcomes = [x for sentence in entity_outcomes(gold, decoded) for x in sentence]
    scores = [s for sentence in entity_confidences(decoded, temperature) for s in sentence]
    golds = [t for entities in gold for t, _, _ in entities]
    curves = {}
    for type_ in sorted({t for t, _ in outcomes} | set(golds)):
        kept = [(s, c) for s, (t, c) in zip(scores, outcomes) if t == type_]
        curves[type_] = pr_curve([s for s, _ in kept], [c for _, c in kept], golds.count(type_))
    report["thresholds"] = {t: best_threshold(curve) for t, curve in curves.items() if curve["threshold"]}
    report["pr_curves"] = curves
    diagram = reliability_diagram(raw, correct, bins, "entity scores", calibrated=scaled) if correct else Figure()
    return report, diagram, plot_pr_curves(curves, "validation, scores after temperature scaling")


def entity_ece(gold: Gold, decoded: Sequence[Decoded], temperature: float, bins: int) -> float | None:
    """The expected calibration error of the predicted entities' scores at this temperature; None without any."""
    correct = [c for sentence in entity_outcomes(gold, decoded) for _, c in sentence]
    scores = [s for sentence in entity_confidences(decoded, temperature) for s in sentence]
    return expected_calibration_error(scores, correct, bins) if correct else None


def entity_temperature(gold: Gold, decoded: Sequence[Decoded]) -> float:
    """The temperature that makes entity scores match how often the entities are right: T minimising the binary
    cross-entropy between each predicted entity's score (its evidence read at T: the mean of softmax(logits / T) at
    its classes) and whether a gold entity has its type and span. Fitted on what users read, entity scores, rather
    than on every word's label: most words are O, and a temperature fitted to them sharpens the entity scores past
    their accuracy."""
    rows, classes, owner, outcomes = [], [], [], []
    for gold_entities, sentence in zip(gold, decoded):
        golds = set(gold_entities)
        for entity, evidence in zip(sentence.entities, sentence.evidence or []):
            rows.append(evidence.rows)
            classes.append(evidence.index)
            owner += [len(outcomes)] * len(evidence.index)
            outcomes.append(entity[:3] in golds)
    if not outcomes or all(outcomes) or not any(outcomes):
        return 1.0  # nothing to fit: no entity, or all right, or all wrong
    logits = torch.from_numpy(np.concatenate(rows)).double()
    classes_t, owner_t = torch.from_numpy(np.concatenate(classes)).long(), torch.tensor(owner)
    target = torch.tensor(outcomes, dtype=torch.float64)
    sizes = torch.bincount(owner_t, minlength=len(outcomes)).double()

    def loss(log_t: torch.Tensor) -> torch.Tensor:
        words = torch.softmax(logits / log_t.exp(), -1).gather(1, classes_t[:, None]).squeeze(1)
        scores = torch.zeros(len(outcomes), dtype=torch.float64).index_add(0, owner_t, words) / sizes
        return torch.nn.functional.binary_cross_entropy(scores.clamp(1e-7, 1 - 1e-7), target)

    return _fit_log_temperature(loss)


def _fit_log_temperature(loss: Any, bounds: tuple[float, float] = TEMPERATURES) -> float:
    """The temperature minimising `loss(log T)`, found by L-BFGS on log T and kept within `bounds`."""
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)  # log T: positive T without a constraint
    low, high = math.log(bounds[0]), math.log(bounds[1])
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        # clamped, so a search that runs towards T = 0 or infinity stops at a bound instead of overflowing
        value = loss(log_t.clamp(low, high))
        value.backward()
        return value

    optimizer.step(closure)
    return min(max(math.exp(log_t.item()), bounds[0]), bounds[1])


def validation_temperature(model: torch.nn.Module, head: Any, datamodule: Any, recorded: Sequence = ()) -> float:
    """The temperature of a trained model under its head, fitted on the DataModule's validation split read as every
    reader reads it (lit_ner.inference); what training stores in the export. `recorded`: (inputs, outputs) of batches
    this model has already read (its own validation pass in training), replayed instead of run again."""
    from lit_ner.data.formats import gold_entities
    from lit_ner.data.reading import Reading
    from lit_ner.inference import Tagger
    from lit_ner.runners import Replay, TorchRunner

    words, hp = datamodule.cached_words()["validation"], datamodule.hparams
    documents = words["document"] if "document" in words.column_names else None
    runner = Replay(recorded, TorchRunner(head.graph(model), head.outputs))
    tagger = Tagger(runner, datamodule.tokenizer, head, Reading.of(hp), datamodule.eval_batch_size,
                    max_tokens=hp.max_tokens)  # fmt: skip
    return entity_temperature(gold_entities(words), tagger.read(words["tokens"], documents))
