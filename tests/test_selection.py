"""The strategies pick what they claim on pools whose scores, costs and embeddings the test sets: uncertainty the
least sure first, diverse one pick per cluster of near-duplicates, random seeded, every budget kept."""

import numpy as np
import pytest

from lit_ner.heads import Decoded, EntitySpan
from lit_ner.selection import diverse_order, kmeans, pick, sentence_score, task_order, within_budget

SCORES = [0.9, 0.2, 0.7, 0.1, 0.5, 0.3]


def test_uncertainty_picks_the_lowest_scores_in_order() -> None:
    assert pick("uncertainty", 3, [1.0] * 6, SCORES) == [3, 1, 5]
    assert pick("uncertainty", 6, [1.0] * 6, SCORES) == [3, 1, 5, 4, 2, 0]


def test_a_word_budget_stops_before_the_sentence_that_would_pass_it() -> None:
    words = [5.0, 4.0, 6.0, 3.0, 2.0, 8.0]
    # least sure first: 3 (3 words), 1 (4), 5 (8) would make 15 > 10: stop there, keep the order (no skipping ahead)
    assert pick("uncertainty", 10, words, SCORES) == [3, 1]
    assert within_budget([0, 1, 2], words, 9) == [0, 1]
    assert within_budget([0, 1, 2], words, 4) == []
    for strategy in ("random", "uncertainty", "mnlp", "diverse"):
        picked = pick(strategy, 12, words, SCORES, np.eye(6), seed=3)
        assert sum(words[i] for i in picked) <= 12 and len(set(picked)) == len(picked), strategy


def test_random_is_seeded_and_reproducible() -> None:
    costs = [1.0] * 100
    first = pick("random", 10, costs, seed=7)
    assert first == pick("random", 10, costs, seed=7)
    assert first != pick("random", 10, costs, seed=8)
    assert len(set(first)) == 10 and first != list(range(10))


def clustered_pool() -> tuple[list[float], np.ndarray]:
    """Three tight groups of near-duplicates; the first group holds the three least sure sentences of all."""
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 10
    groups = [0, 0, 0, 1, 1, 2, 2, 0, 1, 2]
    scores = [0.10, 0.11, 0.12, 0.30, 0.31, 0.40, 0.41, 0.50, 0.60, 0.70]
    return scores, centres[groups] + rng.normal(0, 0.05, (len(groups), 3))


def test_diverse_takes_the_least_sure_of_each_cluster() -> None:
    scores, embeddings = clustered_pool()
    assert pick("uncertainty", 3, [1.0] * 10, scores) == [0, 1, 2]  # all from one group
    assert pick("diverse", 3, [1.0] * 10, scores, embeddings) == [0, 3, 5]  # one a group, least sure first
    order = diverse_order(scores, embeddings, 3, seed=0)
    assert sorted(order) == list(range(10)) and order[:3] == [0, 3, 5]


def test_kmeans_finds_the_groups_it_is_given() -> None:
    _, embeddings = clustered_pool()
    labels, groups = kmeans(embeddings, 3, seed=1), np.array([0, 0, 0, 1, 1, 2, 2, 0, 1, 2])
    assert len(set(labels)) == 3 and all(len(set(labels[groups == g])) == 1 for g in range(3))


@pytest.mark.parametrize("strategy", ["random", "uncertainty", "diverse"])
def test_task_order_serves_every_task_once(strategy: str) -> None:
    scores, embeddings = clustered_pool()
    order = task_order(strategy, scores, embeddings, seed=0)
    assert sorted(order) == list(range(10))
    if strategy == "uncertainty":
        assert order == sorted(range(10), key=scores.__getitem__)


def test_a_sentence_is_as_sure_as_its_least_sure_entity_or_word() -> None:
    decoded = Decoded([EntitySpan("PER", 0, 2, 0.8), EntitySpan("LOC", 3, 4, 0.6)], ["B-PER", "I-PER", "O", "B-LOC"])
    assert sentence_score(decoded) == 0.6  # the export's task_score of the entities, no confidence given
    words = Decoded(decoded.entities, decoded.tags, word_scores=np.array([0.9, 0.95, 0.35, 0.7]))
    assert sentence_score(words) == pytest.approx(0.35)  # a word nearly read as an entity counts too


def test_mnlp_scores_a_sentence_per_word_so_a_word_budget_is_not_spent_on_length() -> None:
    """uncertainty ties a long sentence with a short one that share their least sure word (and so spends a word
    budget on the long one first); mnlp, the mean log-probability a word, takes the short one first."""
    long = Decoded([], ["O"] * 12, word_scores=np.array([0.5] + [0.99] * 11))
    short = Decoded([], ["O"] * 2, word_scores=np.array([0.5, 0.9]))
    assert sentence_score(long) == sentence_score(short) == 0.5
    scores = [sentence_score(long, "mnlp"), sentence_score(short, "mnlp")]
    assert scores[0] == pytest.approx(np.log([0.5] + [0.99] * 11).mean())
    assert pick("mnlp", 2, [12.0, 2.0], scores) == [1]  # the short one, within a budget the long one would pass
    spans = Decoded([EntitySpan("PER", 0, 1, 0.9)], ["B-PER"], least_sure=0.25)  # a span head: no word scores
    assert sentence_score(spans, "mnlp") == pytest.approx(np.log(0.25))
