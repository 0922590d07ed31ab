"""Splitting raw text into words with character offsets, the one word splitter lit_ner uses for text it builds itself."""

import re

# A word is a run of letters/digits, optionally joined by inner hyphens or apostrophes
# ("Jean-Paul", "O'Brien"); a trailing possessive "'s" is its own word, as in the
# Penn Treebank convention, so "Walker's" -> "Walker", "'s" and the name stays clean (also with the typographic
# apostrophe: "Walker’s" -> "Walker", "’s").
_WORD = re.compile(r"['’]s\b|\w+(?:[-'’]\w+)*(?<!['’]s)|[^\w\s]", re.UNICODE)


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Return (word, start, end) for each word of `text`; `text[start:end] == word`."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]
