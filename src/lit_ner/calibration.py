"""Whether a model's scores mean what they say: expected calibration error, one temperature fitted on held-out
logits (Guo et al. 2017), reliability diagrams, and precision/recall against a score threshold."""

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

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
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)  # log T: positive T without a constraint
    low, high = math.log(bounds[0]), math.log(bounds[1])
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        # clamped, so a search that runs towards T = 0 or infinity stops at a bound instead of overflowing; the NLL
        # is convex in 1/T, so the best temperature within the bounds is the free optimum clipped to them
        loss = torch.nn.functional.cross_entropy(logits / log_t.clamp(low, high).exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return min(max(math.exp(log_t.item()), bounds[0]), bounds[1])


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
