"""The heads lit_ner trains, a seam chosen by config (`head=token|crf|span`, conf/head/): each owns the transformers
model under it, its loss, its decoding into `EntitySpan`s, what its export records and the graph runners execute
(lit_ner.heads.base). Adding a head is one module here, listed in HEADS, and one file in conf/head/."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lit_ner.errors import ConfigError
from lit_ner.heads.base import Decoded, EntitySpan, Evidence, Head, Thresholds, TrainSentences, flat_tags, softmax
from lit_ner.heads.crf import CrfHead
from lit_ner.heads.span import SpanHead
from lit_ner.heads.token import AGGREGATIONS, TokenHead

__all__ = ["AGGREGATIONS", "HEADS", "Decoded", "EntitySpan", "Evidence", "Head", "Thresholds", "build_head", "configure_head",
           "flat_tags", "head_of", "softmax"]  # fmt: skip

HEADS: dict[str, type[Head]] = {head.name: head for head in (TokenHead, CrfHead, SpanHead)}


def _split(options: Mapping[str, Any] | None) -> tuple[type[Head], dict[str, Any]]:
    options = dict(options or {})
    name = options.pop("name", "token")
    if name not in HEADS:
        raise ConfigError(f"head={name} is unknown; choose one of {', '.join(HEADS)}")
    return HEADS[name], options


def build_head(options: Mapping[str, Any] | None, labels: Sequence[str]) -> Head:
    """The head `options` name (`{"name": "span", "max_width": 8, ...}`; none: the token head) for `labels`."""
    cls, options = _split(options)
    try:
        return cls(labels, **options)
    except TypeError as err:  # an option the head does not take
        raise ConfigError(f"model.head: {err}; the {cls.name} head's options are in conf/head/{cls.name}.yaml") from None


def configure_head(options: Mapping[str, Any] | None, train: Callable[[], TrainSentences]) -> dict[str, Any]:
    """The head options with what the training sentences decide filled in (`train()` gives them, (words, gold
    entities) each; called only by a head that needs them)."""
    cls, rest = _split(options)
    return {"name": cls.name, **cls.configure(rest, train)}


def head_of(config: Any, labels: Sequence[str]) -> Head:
    """The head an export's config.json records (`lit_ner_head`; an export without one has the token head)."""
    return build_head(getattr(config, "lit_ner_head", None), labels)
