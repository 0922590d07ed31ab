"""Which sentences to label next: the active-learning strategies (random, uncertainty, mnlp, diverse) as pure
functions over per-sentence scores, costs and embeddings, shared by the simulation (`lit_ner.active`) and by predict's
`sort=`; and the sentence embeddings the diverse strategy spreads its picks over."""

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lit_ner.data.preannotations import task_score

if TYPE_CHECKING:  # a type only: choosing sentences needs no model
    from lit_ner.heads import Decoded

STRATEGIES = ("random", "uncertainty", "mnlp", "diverse")
# the strategies that take the least sure first, each by its own sentence score (`sentence_score`)
BY_SCORE = ("uncertainty", "mnlp")
# diverse: the candidates are this many times the picks, so each cluster has a few uncertain sentences to choose from,
# but none so certain that spreading would trade away the uncertainty that makes a pick worth labelling
SPREAD = 4


def sentence_score(decoded: "Decoded", strategy: str = "uncertainty") -> float:
    """How sure the model is of a sentence: lower is more worth labelling. uncertainty and diverse: as the Label Studio
    export scores a task (`task_score`), its least sure decision, which falls as a sentence grows, so a word budget
    buys fewer, longer sentences. mnlp: the mean over words of log p(the word's tag) (Shen et al. 2018's maximum
    normalized log-probability), which does not fall with length; a head without word scores (span) gives the log
    of its least sure decision."""
    if strategy != "mnlp":
        return task_score([entity._asdict() for entity in decoded.entities], decoded.confidence)
    if decoded.word_scores is not None and len(decoded.word_scores):
        return float(np.log(np.clip(np.asarray(decoded.word_scores, dtype=float), 1e-12, 1.0)).mean())
    confidence = decoded.confidence
    return math.log(max(confidence, 1e-12)) if confidence is not None else 0.0


def within_budget(order: Sequence[int], costs: Sequence[float], budget: float) -> list[int]:
    """`order`'s indices up to the budget: the picks stop before the first one whose cost would pass it, so the
    strategy's order is kept (skipping ahead to shorter sentences would turn every strategy into "shortest first")."""
    picked, spent = [], 0.0
    for i in order:
        if spent + costs[i] > budget:
            break
        picked.append(int(i))
        spent += costs[i]
    return picked


def random_order(count: int, seed: int) -> list[int]:
    """A seeded shuffle of range(count): the same seed gives the same order on every machine (numpy's PCG64)."""
    return [int(i) for i in np.random.default_rng(seed).permutation(count)]


def uncertainty_order(scores: Sequence[float]) -> list[int]:
    """The least sure first; ties keep their order."""
    return [int(i) for i in np.argsort(np.asarray(scores, dtype=float), kind="stable")]


def kmeans(points: np.ndarray, k: int, seed: int, steps: int = 25) -> np.ndarray:
    """Each point's cluster (0..k-1) by k-means on cosine geometry (rows normalised), seeded with k-means++."""
    x = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)

    def distances(centres: np.ndarray) -> np.ndarray:  # squared, (points, centres), without a points*k*dim array
        return np.maximum((x**2).sum(1)[:, None] - 2 * x @ centres.T + (centres**2).sum(1)[None], 0.0)

    chosen = [int(rng.integers(len(x)))]
    nearest = distances(x[chosen])[:, 0]
    for _ in range(1, k):  # k-means++: each next centre far from those chosen, so no cluster starts empty
        total = nearest.sum()
        chosen.append(int(rng.choice(len(x), p=nearest / total)) if total > 0 else int(rng.integers(len(x))))
        nearest = np.minimum(nearest, distances(x[chosen[-1:]])[:, 0])
    centres = x[chosen]
    for _ in range(steps):
        labels = np.argmin(distances(centres), axis=1)
        moved = np.stack([x[labels == c].mean(0) if (labels == c).any() else centres[c] for c in range(k)])
        if np.allclose(moved, centres):
            break
        centres = moved
    return np.argmin(distances(centres), axis=1)


def diverse_batches(scores: Sequence[float], embeddings: np.ndarray, batch: int, seed: int) -> Iterator[list[int]]:
    """Uncertainty that spreads, one batch at a time: the SPREAD * batch least sure sentences left are clustered by
    embedding into `batch` clusters and the least sure of each cluster is picked (least sure first), so that
    near-duplicates of one confusing sentence do not fill a batch. Every index comes once over all batches."""
    left = uncertainty_order(scores)
    points = np.asarray(embeddings)
    while left:
        candidates = left[: SPREAD * batch]
        k = min(batch, len(candidates))
        clusters = kmeans(points[candidates], k, seed) if k > 1 else np.zeros(len(candidates), dtype=int)
        first = {}  # cluster -> its least sure candidate (candidates are least sure first)
        for i, cluster in zip(candidates, clusters):
            first.setdefault(int(cluster), i)
        chosen = sorted(first.values(), key=candidates.index)
        yield chosen
        taken = set(chosen)
        left = [i for i in left if i not in taken]


def diverse_order(scores: Sequence[float], embeddings: np.ndarray, batch: int, seed: int) -> list[int]:
    """Every index, by `diverse_batches`."""
    return [i for chosen in diverse_batches(scores, embeddings, batch, seed) for i in chosen]


def pick(
    strategy: str,
    budget: float,
    costs: Sequence[float],
    scores: Sequence[float] | None = None,
    embeddings: np.ndarray | None = None,
    seed: int = 0,
) -> list[int]:
    """The indices of the candidates (`costs` one a candidate: 1 a sentence, or its words) to label next, in pick
    order, up to `budget` (`within_budget`). uncertainty, mnlp and diverse need `scores` (`sentence_score` of the
    strategy); diverse also `embeddings`."""
    if strategy == "random":
        return within_budget(random_order(len(costs), seed), costs, budget)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r}: one of {', '.join(STRATEGIES)}")
    by_uncertainty = uncertainty_order(scores)
    if strategy in BY_SCORE:
        return within_budget(by_uncertainty, costs, budget)
    # as many clusters as uncertainty would pick within the budget: one pick a cluster
    batch = max(1, len(within_budget(by_uncertainty, costs, budget)))
    order: list[int] = []
    for chosen in diverse_batches(scores, embeddings, batch, seed):  # only as many batches as the budget reaches
        order += chosen
        if sum(costs[i] for i in order) > budget:
            break
    return within_budget(order, costs, budget)


def task_order(strategy: str, scores: Sequence[float], embeddings: np.ndarray | None, seed: int,
               batch: int = 25) -> list[int]:  # fmt: skip
    """The order annotation-tool tasks are served in: every task, by the strategy; diverse spreads each run of `batch`
    tasks (about what an annotator labels in one sitting; fewer where there are few tasks, so that each run is picked
    from several times its size)."""
    if strategy == "random":
        return random_order(len(scores), seed)
    if strategy in BY_SCORE:
        return uncertainty_order(scores)
    return diverse_order(scores, embeddings, max(1, min(batch, len(scores) // SPREAD)), seed)


def embed(encoder: Any, tokenizer: Any, sentences: Sequence[Sequence[str]], batch_size: int = 64,
          max_length: int = 256) -> np.ndarray:  # fmt: skip
    """One vector a sentence of words: the last hidden states of `encoder` (a transformers model; a tagger's own
    encoder, its head left out) averaged over the sentence's sub-tokens, the pooling of sentence-embedding models
    such as MiniLM."""
    import torch

    base = encoder.base_model.eval()
    vectors = []
    with torch.inference_mode():
        for start in range(0, len(sentences), batch_size):
            words = [list(s) for s in sentences[start : start + batch_size]]
            inputs = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length,
                               padding=True, return_tensors="pt").to(base.device)  # fmt: skip
            hidden = base(**inputs).last_hidden_state.float()
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            vectors.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).cpu())
    return torch.cat(vectors).numpy() if vectors else np.zeros((0, base.config.hidden_size), dtype=np.float32)


def count_for(fraction: float, total: float) -> float:
    """A budget as a fraction of a total (sentences or words), in whole units."""
    return float(math.floor(fraction * total + 1e-9))
