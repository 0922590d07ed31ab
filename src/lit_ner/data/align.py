"""Word labels to sub-token labels, and long sentences to overlapping windows: pure functions, no tokenizer."""

from collections.abc import Mapping, Sequence
from typing import NamedTuple

# the label id of positions that are not scored words (special tokens, later sub-tokens, padding, a window's
# context): cross-entropy's ignore_index, and skipped by lit_ner's metric. Defined here only; the rest import it.
IGNORE = -100


class Window(NamedTuple):
    """Words [start, end) go into the model; only words [score_start, score_end) carry labels."""

    start: int
    end: int
    score_start: int
    score_end: int


def align_labels(
    word_ids: Sequence[int | None],
    word_labels: Sequence[int],
    label_all_tokens: bool = False,
    b_to_i: Mapping[int, int] | None = None,
    scored: range | None = None,
) -> list[int]:
    """Give each sub-token the label of its word, as a tokenizer's `word_ids()` maps them.

    Special tokens (word id None) get IGNORE. The first sub-token of a word carries the word's label;
    the rest get IGNORE, or with `label_all_tokens` the word's label with B- turned into I- (`b_to_i`),
    so a word split in three is still one entity, not three. Words outside `scored` (the context of
    a window) get IGNORE everywhere, so each word is scored exactly once across windows.
    Alignment is by word id, never by position: a word that produced no sub-token is absent from
    `word_ids` and cannot shift the labels of the words after it.
    """
    b_to_i = b_to_i or {}
    labels = []
    previous = None
    for word in word_ids:
        if word is None or (scored is not None and word not in scored):
            labels.append(IGNORE)
        elif word != previous:
            labels.append(word_labels[word])
        elif label_all_tokens:
            labels.append(b_to_i.get(word_labels[word], word_labels[word]))
        else:
            labels.append(IGNORE)
        previous = word
    return labels


def plan_windows(word_lengths: Sequence[int], budget: int, context: int) -> list[Window]:
    """Cut a sentence into windows of at most `budget` sub-tokens instead of truncating it.

    `word_lengths` is the number of sub-tokens of each word (a longer-than-budget word counts as
    `budget`: only its first sub-token is labelled). Each window scores a block of words of at most
    `budget - 2 * context` sub-tokens and adds up to `context` sub-tokens of neighbouring words on
    each side, so every word is predicted with some context and scored in exactly one window.
    """
    if budget < 1:
        raise ValueError(f"budget must be at least 1 sub-token, got {budget}")
    lengths = [min(max(n, 1), budget) for n in word_lengths]
    if sum(lengths) <= budget:
        return [Window(0, len(lengths), 0, len(lengths))]
    core = max(budget - 2 * context, 1)
    windows = []
    start = 0
    while start < len(lengths):
        end, used = start, 0
        while end < len(lengths) and (end == start or used + lengths[end] <= core):
            used += lengths[end]
            end += 1
        left, left_used = start, 0
        while left > 0 and left_used + lengths[left - 1] <= context and used + lengths[left - 1] <= budget:
            left -= 1
            left_used += lengths[left]
            used += lengths[left]
        right = end
        while right < len(lengths) and used + lengths[right] <= budget:
            used += lengths[right]
            right += 1
        windows.append(Window(left, right, start, end))
        start = end
    return windows


def neighbour_words(
    sentences: Sequence[Sequence[str]], documents: Sequence[object], limit: int
) -> list[tuple[list[str], list[str]]]:
    """Each sentence's document context, as FLERT reads it: up to `limit` words of the sentences before it and up to
    `limit` words of those after it (in reading order), taken from adjacent sentences with the same document id only.

    `limit` words hold at least `limit` sub-tokens, so the encoder can cut each side to `limit` sub-tokens with
    `fit_context` without needing more words; a row whose neighbour belongs to another document has no context there.
    """
    context = []
    for i in range(len(sentences)):
        left: list[str] = []
        j = i - 1
        while len(left) < limit and j >= 0 and documents[j] == documents[i]:
            left = list(sentences[j][-(limit - len(left)) :]) + left
            j -= 1
        right: list[str] = []
        j = i + 1
        while len(right) < limit and j < len(sentences) and documents[j] == documents[i]:
            right += sentences[j][: limit - len(right)]
            j += 1
        context.append((left, right))
    return context


def fit_context(left: Sequence[int], right: Sequence[int], limit: int, room: int) -> tuple[int, int]:
    """How many context words to keep on each side, given their sub-token lengths in reading order: the nearest words
    first, taking a side's next word while that side stays within `limit` sub-tokens and both sides within `room`
    (what the sentence leaves of the row); the sides take turns, so a tight row keeps context on both."""
    sides = (list(reversed(left)), list(right))
    kept, used = [0, 0], [0, 0]
    grew = True
    while grew:
        grew = False
        for side, lengths in enumerate(sides):
            if kept[side] < len(lengths):
                n = lengths[kept[side]]
                if used[side] + n <= limit and sum(used) + n <= room:
                    kept[side] += 1
                    used[side] += n
                    grew = True
    return kept[0], kept[1]
