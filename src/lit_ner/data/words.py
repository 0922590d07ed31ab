"""Splitting raw text into words with character offsets: the pre-tokenizers lit_ner reads raw text with (text to
predict, annotation-tool exports). The one a model uses is a data setting (`data.pretokenizer`), recorded in its
export, so text at prediction is split the way its training data was."""

import re
from collections.abc import Callable

from lit_ner.errors import ConfigError

# A word is a run of letters/digits, optionally joined by inner hyphens or apostrophes
# ("Jean-Paul", "O'Brien"); a trailing possessive "'s" is its own word, as in the
# Penn Treebank convention, so "Walker's" -> "Walker", "'s" and the name stays clean (also with the typographic
# apostrophe: "Walker’s" -> "Walker", "’s"). Every other character that is not a space is a word of its own.
_WORD = re.compile(r"['’]s\b|\w+(?:[-'’]\w+)*(?<!['’]s)|[^\w\s]", re.UNICODE)
_NON_SPACE = re.compile(r"\S+")

Words = list[tuple[str, int, int]]  # (word, start, end): text[start:end] == word


def split_words(text: str) -> Words:
    """The `punctuation` pre-tokenizer, for CoNLL-style data: words and each punctuation mark apart."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def split_whitespace(text: str) -> Words:
    """The `whitespace` pre-tokenizer: every run of non-space characters is a word (punctuation stays attached)."""
    return [(m.group(), m.start(), m.end()) for m in _NON_SPACE.finditer(text)]


PRETOKENIZERS: dict[str, Callable[[str], Words]] = {"punctuation": split_words, "whitespace": split_whitespace}


def pretokenizer(name: str) -> Callable[[str], Words]:
    """The pre-tokenizer called `name` (data.pretokenizer)."""
    if name not in PRETOKENIZERS:
        raise ConfigError(f"data.pretokenizer={name!r} is unknown; choose {'|'.join(PRETOKENIZERS)}")
    return PRETOKENIZERS[name]
