"""Turning TextminR book-metadata rows (a prompt plus a response naming its author and date) into words tagged
with the plain labels AUTHOR / DATE / O, matched on character spans instead of the original token-overlap rules."""

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from lit_ner.data.words import split_words
from lit_ner.errors import DataError

logger = logging.getLogger(__name__)

MISSING = "N/A"
FIELD_LABELS = {"author": "AUTHOR", "date": "DATE"}
_EXAMPLES_KEPT = 5


def parse_response(response: Any, where: str) -> dict[str, str | None]:
    """The author and date of a response (a JSON string or an object); None where it says "N/A" or is empty."""
    if isinstance(response, str):
        try:
            response = json.loads(response)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: the response is not valid JSON ({err.msg}): {response[:80]!r}") from None
        except RecursionError:
            raise DataError(f"{where}: the response is JSON nested too deeply to read: {response[:80]!r}") from None
    if not isinstance(response, dict) or not all(name in response for name in FIELD_LABELS):
        raise DataError(f"{where}: the response must be an object with 'author' and 'date', got {response!r:.80}")
    values: dict[str, str | None] = {}
    for name in FIELD_LABELS:
        # Some generated responses pad the year (" 2015"); the padding is not part of the date.
        value = "" if response[name] is None else str(response[name]).strip()
        values[name] = None if value.upper() in ("", MISSING) else value
    return values


def find_word_spans(text: str, value: str, words: list[tuple[str, int, int]]) -> list[int]:
    """Indices of the words covered by every occurrence of `value` in `text` that starts and ends on word
    boundaries; exact-case occurrences win, case-insensitive ones are the fallback. Empty when there is none."""
    starts = {start: i for i, (_, start, _) in enumerate(words)}
    ends = {end: i for i, (_, _, end) in enumerate(words)}
    for flags in (0, re.IGNORECASE):
        # Only whole-word occurrences count, so "A" never matches inside "N/A" and "Ann" never inside "Annual".
        found = [
            i
            for match in re.finditer(re.escape(value), text, flags)
            if match.start() in starts and match.end() in ends
            for i in range(starts[match.start()], ends[match.end()] + 1)
        ]
        if found:
            return found
    return []


def tag_prompt(prompt: str, values: dict[str, str | None]) -> tuple[list[str], list[str], list[str]]:
    """Words of `prompt`, their tags, and the fields whose given value does not occur in the prompt."""
    words = split_words(prompt)
    tags = ["O"] * len(words)
    not_found = []
    for name, value in values.items():
        if value is None:
            continue
        indices = find_word_spans(prompt, value, words)
        if not indices:
            not_found.append(name)
        for i in indices:
            tags[i] = FIELD_LABELS[name]
    return [word for word, _, _ in words], tags, not_found


def convert_rows(rows: Iterable[tuple[str, Any]]) -> tuple[list[list[str]], list[list[str]]]:
    """Convert (where, row) pairs, where = "file:line", into token and tag lists.

    A row whose author or date is given but absent from its prompt cannot be labelled correctly (tagging it
    would teach the model that the real mention is O), so it is skipped, and the skipped rows are counted in the log.
    """
    all_tokens, all_tags, rows_seen = [], [], 0
    skipped: Counter = Counter()  # rows per field not found in the prompt
    examples: list[str] = []
    for where, row in rows:
        if not isinstance(row, dict) or "prompt" not in row or "response" not in row:
            raise DataError(f"{where}: a TextminR row needs 'prompt' and 'response' fields, got {row!r:.80}")
        rows_seen += 1
        tokens, tags, not_found = tag_prompt(str(row["prompt"]), parse_response(row["response"], where))
        if not tokens:
            not_found = ["prompt"]  # an empty prompt has nothing to tag
        if not_found:
            skipped.update(not_found)
            if len(examples) < _EXAMPLES_KEPT:
                examples.append(f"{where} ({', '.join(not_found)} not found)")
            continue
        all_tokens.append(tokens)
        all_tags.append(tags)
    if len(all_tokens) < rows_seen:
        by_field = ", ".join(f"{name}: {count}" for name, count in sorted(skipped.items()))
        logger.warning(
            "TextminR rows: kept %d of %d rows; skipped %d whose author/date does not occur in the prompt as whole "
            "words (%s), e.g. %s", len(all_tokens), rows_seen, rows_seen - len(all_tokens), by_field, "; ".join(examples)
        )  # fmt: skip
    return all_tokens, all_tags
