"""Label alignment and windows: pure functions first, then with a real tokenizer."""

from hypothesis import given, settings
from hypothesis import strategies as st

from lit_ner.data.align import IGNORE, align_labels, plan_windows
from lit_ner.data.encode import encode_batch, load_tokenizer


def test_first_sub_token_carries_the_label_rest_ignored() -> None:
    # words: "Walker"(2 pieces) "wrote"(1) ; special tokens around
    word_ids = [None, 0, 0, 1, None]
    assert align_labels(word_ids, [1, 0]) == [IGNORE, 1, IGNORE, 0, IGNORE]


def test_label_all_tokens_turns_b_into_i_on_later_pieces() -> None:
    word_ids = [None, 0, 0, 0, 1, None]
    assert align_labels(word_ids, [1, 0], label_all_tokens=True, b_to_i={1: 2}) == [IGNORE, 1, 2, 2, 0, IGNORE]


def test_word_without_sub_tokens_does_not_shift_later_labels() -> None:
    # word 1 produced no sub-token (an empty string): word 2 keeps its own label
    word_ids = [None, 0, 2, None]
    assert align_labels(word_ids, [5, 6, 7]) == [IGNORE, 5, 7, IGNORE]


def test_context_words_of_a_window_are_not_scored() -> None:
    word_ids = [None, 0, 1, 2, 3, None]
    assert align_labels(word_ids, [1, 2, 3, 4], scored=range(1, 3)) == [IGNORE, IGNORE, 2, 3, IGNORE, IGNORE]


def test_short_sentence_is_one_window() -> None:
    assert plan_windows([1, 2, 3], budget=10, context=2) == [(0, 3, 0, 3)]


@settings(max_examples=300, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 9), min_size=1, max_size=80),
    budget=st.integers(4, 40),
    context=st.integers(0, 8),
)
def test_windows_fit_the_budget_and_score_every_word_once(lengths: list[int], budget: int, context: int) -> None:
    windows = plan_windows(lengths, budget, context)
    scored = [w for win in windows for w in range(win.score_start, win.score_end)]
    assert scored == list(range(len(lengths)))  # every word exactly once, in order
    for win in windows:
        assert win.start <= win.score_start < win.score_end <= win.end
        assert sum(min(max(n, 1), budget) for n in lengths[win.start : win.end]) <= budget


def encode(tokenizer, sentences, tags, max_length=16, label_all_tokens=False, labels=None):
    labels = labels or sorted({t for ts in tags for t in ts})
    label2id = {t: i for i, t in enumerate(labels)}
    rows = encode_batch(
        {"tokens": sentences, "tags": tags}, list(range(len(sentences))), tokenizer, label2id, max_length,
        label_all_tokens, context=2,
    )  # fmt: skip
    return rows, labels


def read_back(rows, labels, sentence):
    """The tag of each word, read from its first sub-token in whichever window scored it."""
    found = {}
    for ids, row_labels, s in zip(rows["input_ids"], rows["labels"], rows["sentence"]):
        if s == sentence:
            found.setdefault("ids", []).append(ids)
            found.setdefault("labels", []).extend(labels[x] for x in row_labels if x != IGNORE)
    return found["labels"]


def test_encode_keeps_empty_tokens_and_labels_in_place(tiny_model) -> None:
    tokenizer = load_tokenizer(str(tiny_model))
    words = ["Alan", "", "Walker", "\u200b", "wrote", "1940"]
    tags = ["B-PER", "O", "B-PER", "O", "O", "B-DATE"]
    rows, labels = encode(tokenizer, [words], [tags], max_length=64)
    assert len(rows["input_ids"]) == 1
    assert read_back(rows, labels, 0) == tags


def test_long_sentence_split_into_windows_scores_every_word_once(tiny_model) -> None:
    tokenizer = load_tokenizer(str(tiny_model))
    words = ("alan walker wrote the book in 1940 and " * 6).split()
    tags = (["B-PER", "I-PER", "O", "O", "O", "O", "B-DATE", "O"] * 6)
    rows, labels = encode(tokenizer, [words], [tags], max_length=16)
    assert len(rows["input_ids"]) > 1
    assert rows["window"] == list(range(len(rows["input_ids"])))
    assert all(len(ids) <= 16 for ids in rows["input_ids"])
    assert read_back(rows, labels, 0) == tags


def test_label_all_tokens_marks_every_piece(tiny_model) -> None:
    tokenizer = load_tokenizer(str(tiny_model))
    rows, labels = encode(
        tokenizer, [["1940", "alan"]], [["B-DATE", "O"]], label_all_tokens=True, labels=["O", "B-DATE", "I-DATE"]
    )
    named = [labels[x] if x != IGNORE else None for x in rows["all_labels"][0]]
    assert named == [None, "B-DATE", "I-DATE", "I-DATE", "I-DATE", "O", None]
    # the metric's target still has one label per word
    assert [labels[x] for x in rows["labels"][0] if x != IGNORE] == ["B-DATE", "O"]
