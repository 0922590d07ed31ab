"""The generated quickstart corpus: reproducible, well split, plain AUTHOR/DATE tags that match their spans."""

import re

import pytest

from lit_ner.data.books import make_book_corpus
from lit_ner.data.schemes import detect_scheme, entity_spans
from lit_ner.errors import ConfigError

# Words a Faker name may be made of: a capitalised name (with inner hyphens or apostrophes),
# an initial with its period, or a lowercase particle such as "van", "de", "di".
NAME_WORD = re.compile(r"(?:[^\W\d_][\w'’-]*|\.)")
GERMAN_WORDS = {"veröffentlichte", "erschien", "schrieb", "von", "Seiten", "Auflage", "im", "Jahr"}


@pytest.fixture(scope="module")
def corpus():
    return make_book_corpus(num_sentences=600, seed=3)


def all_rows(corpus):
    return [row for split in corpus.values() for row in split]


def test_same_seed_same_data_other_seed_other_data(corpus):
    again = make_book_corpus(num_sentences=600, seed=3)
    other = make_book_corpus(num_sentences=600, seed=4)
    assert all_rows(again) == all_rows(corpus)
    assert all_rows(other) != all_rows(corpus)


def test_split_sizes():
    corpus = make_book_corpus(num_sentences=200, seed=1, validation_fraction=0.1, test_fraction=0.2)
    assert {name: len(split) for name, split in corpus.items()} == {"train": 140, "validation": 20, "test": 40}


def test_bad_fractions_fail():
    with pytest.raises(ConfigError, match="test_fraction"):
        make_book_corpus(num_sentences=10, validation_fraction=0.5, test_fraction=0.5)


def test_sentences_are_unique(corpus):
    texts = [" ".join(row["tokens"]) for row in all_rows(corpus)]
    assert len(set(texts)) == len(texts)


def test_tags_are_plain_with_three_labels(corpus):
    rows = all_rows(corpus)
    assert all(len(row["tokens"]) == len(row["tags"]) > 0 for row in rows)
    assert {tag for row in rows for tag in row["tags"]} == {"O", "AUTHOR", "DATE"}
    for split in corpus.values():
        assert detect_scheme(split["tags"]) == "plain"


def test_every_date_is_one_word_year(corpus):
    for row in all_rows(corpus):
        for type_, start, end in entity_spans(row["tags"]):
            if type_ == "DATE":
                assert end - start == 1
                assert re.fullmatch(r"\d{4}", row["tokens"][start])
                assert 1500 <= int(row["tokens"][start]) <= 2025


def test_numbers_that_are_not_years_are_o(corpus):
    numbers = [
        word for row in all_rows(corpus) for word, tag in zip(row["tokens"], row["tags"])
        if tag == "O" and word.isdigit()
    ]
    assert numbers, "the corpus should have distractor numbers (pages, editions, prices)"
    assert not any(len(word) == 4 and 1500 <= int(word) <= 2025 for word in numbers)


def test_author_spans_are_whole_names(corpus):
    authors = [
        row["tokens"][start:end] for row in all_rows(corpus)
        for type_, start, end in entity_spans(row["tags"]) if type_ == "AUTHOR"
    ]
    assert len(authors) > 200
    for words in authors:
        assert len(words) >= 2  # first name or initial, then last name
        assert all(NAME_WORD.fullmatch(word) for word in words), words
        assert words[-1] not in ("'s", ".")  # the possessive and periods stay outside
    # Initials come as "J", "." pairs; some names have them.
    assert any(words[1] == "." for words in authors)


def test_possessive_is_outside_the_author(corpus):
    possessive = [
        row for row in all_rows(corpus)
        for i, word in enumerate(row["tokens"]) if word == "'s" and row["tags"][i - 1] == "AUTHOR"
    ]
    assert possessive
    for row in possessive:
        assert all(tag == "O" for word, tag in zip(row["tokens"], row["tags"]) if word == "'s")


def test_german_and_english_sentences_present(corpus):
    rows = all_rows(corpus)
    german = [row for row in rows if GERMAN_WORDS & set(row["tokens"])]
    assert 0.15 < len(german) / len(rows) < 0.45


def test_sentences_with_only_author_only_date_both_and_neither(corpus):
    kinds = {frozenset(tag for tag in row["tags"] if tag != "O") for row in all_rows(corpus)}
    assert kinds == {frozenset(), frozenset({"AUTHOR"}), frozenset({"DATE"}), frozenset({"AUTHOR", "DATE"})}


def test_default_corpus_leaves_the_showcase_sentence_unseen():
    # The quickstart shows this sentence to the trained model; it must come from a template, not memory.
    showcase = "Alan Walker 's vibrant self-portraits , painted in 1940 , express her tumultuous inner world ."
    corpus = make_book_corpus()
    assert showcase not in {" ".join(row["tokens"]) for row in all_rows(corpus)}
    assert any("self-portraits" in row["tokens"] and "DATE" in row["tags"] for row in all_rows(corpus))
