"""How a model reads sentences: the data settings that decide its rows (`Reading`, the only list of those keys),
recorded in every export (config.json `lit_ner_data`) and checkpoint, and the rule for the longest row a model
takes."""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from lit_ner.errors import ConfigError


@dataclass(frozen=True)
class Reading:
    """The data settings training encoded with, so that every later reading encodes the same rows. The DataModule
    takes its defaults from here."""

    max_length: int = 256  # sub-tokens a row, special tokens included; longer sentences are read in windows
    window_context: int = 32  # sub-tokens of neighbouring words on each side of a window
    context: str = "sentence"  # or "document": a sentence is read between its neighbours in the document
    context_tokens: int = 64  # sub-tokens of document context a side
    label_all_tokens: bool = False  # trained on every sub-token (else on each word's first)
    pretokenizer: str = "punctuation"  # how raw text is split into words (lit_ner.data.words)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def given(cls, settings: Mapping[str, Any] | None) -> dict[str, Any]:
        """The reading keys `settings` gives a value (not None): a data config's, a checkpoint's data settings or an
        export's `lit_ner_data` (an export written before a key was recorded lacks it)."""
        settings = settings or {}
        return {k: settings[k] for k in cls.keys() if settings.get(k) is not None}

    @classmethod
    def of(cls, settings: Mapping[str, Any] | None) -> "Reading":
        """The reading in a mapping of data settings; keys it lacks keep their defaults."""
        return cls(**cls.given(settings))

    def record(self) -> dict[str, Any]:
        return asdict(self)


def default_max_length(limit: int | None) -> int:
    """The max_length of a model that records none: the default, within the `limit` positions it reads."""
    return min(Reading.max_length, limit or Reading.max_length)


def check_max_length(max_length: int, limit: int | None, special_tokens: int, key: str) -> None:
    """A row of `max_length` sub-tokens must fit the model's `limit` positions (positions past it would index
    outside the embeddings) and leave room for text beside its special tokens; else a ConfigError naming `key`."""
    if limit and max_length > limit:
        raise ConfigError(
            f"{key}={max_length} is above the {limit} positions the model reads. Set {key}={limit} or lower: longer "
            "sentences are split into overlapping windows, never truncated."
        )
    if max_length - special_tokens < 1:
        raise ConfigError(f"{key}={max_length} leaves no room for text beside the model's {special_tokens} special tokens")
