"""What every head shares: the one entity representation (`EntitySpan`: type, start word, end word exclusive,
score), what a head's decoding gives for a sentence (`Decoded`), the `Head` interface, and the word positions of
a training batch's sentences."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from lit_ner.data.align import IGNORE
from lit_ner.data.batching import attention_mask, padded
from lit_ner.data.encode import Row
from lit_ner.data.schemes import entity_types, outermost_tags

Thresholds = float | dict[str, float] | None  # the lowest entity score kept: one for all types, or per type
TrainSentences = Sequence[tuple[Sequence[str], Sequence[tuple[str, int, int]]]]  # (words, gold entities) each


class EntitySpan(NamedTuple):
    """An entity as every part of lit_ner passes it: its type, its first word, the word after its last, a score."""

    type: str
    start: int
    end: int
    score: float


class Evidence(NamedTuple):
    """What an entity's score is made of: `rows` (k, classes) of logits and one class a row; the score is the mean of
    softmax(rows / temperature) at those classes. Calibration refits the temperature on it."""

    rows: np.ndarray
    index: np.ndarray

    def score(self, temperature: float = 1.0) -> float:
        return float(softmax(self.rows.astype(np.float64) / temperature)[np.arange(len(self.index)), self.index].mean())


@dataclass
class Decoded:
    """A sentence as a head reads it: its entities (nested for a span head on nested data), one IOB2 tag a word (the
    flat reading: a tagger's own tags, a span head's outermost entities), and what calibration and uncertainty read.

    `word_scores`/`o_scores`: a tagger's probability of each word's tag and of O; `least_sure`: a span head's
    probability of its least sure span decision."""

    entities: list[EntitySpan]
    tags: list[str]
    evidence: list[Evidence] | None = None
    word_scores: np.ndarray | None = None
    o_scores: np.ndarray | None = None
    least_sure: float | None = None

    @property
    def confidence(self) -> float | None:
        """How sure the head is of its least sure decision in the sentence (lower: more worth labelling)."""
        if self.word_scores is not None:
            return float(self.word_scores.min()) if len(self.word_scores) else None
        return self.least_sure

    def kept(self, thresholds: Thresholds) -> "Decoded":
        """Without the entities scoring below their type's threshold: a tagger's words of those read O (their scores
        the probability of O); a span head's flat tags are laid again from the entities kept."""
        if not thresholds:
            return self
        keep = [e.score >= (thresholds.get(e.type, 0.0) if isinstance(thresholds, dict) else thresholds)
                for e in self.entities]  # fmt: skip
        entities = [e for e, k in zip(self.entities, keep) if k]
        evidence = None if self.evidence is None else [x for x, k in zip(self.evidence, keep) if k]
        if self.word_scores is None:
            return replace(self, entities=entities, evidence=evidence, tags=flat_tags(len(self.tags), entities))
        tags, scores = list(self.tags), self.word_scores.copy()
        for entity in (e for e, k in zip(self.entities, keep) if not k):
            tags[entity.start : entity.end] = ["O"] * (entity.end - entity.start)
            scores[entity.start : entity.end] = self.o_scores[entity.start : entity.end]
        return replace(self, entities=entities, evidence=evidence, tags=tags, word_scores=scores)


def flat_tags(n_words: int, entities: Sequence[EntitySpan]) -> list[str]:
    """IOB2 tags of the outermost entities: the longest first (the higher score, then the earlier, on a tie), each
    where no entity laid before it overlaps."""
    order = sorted(entities, key=lambda e: (e.start - e.end, -e.score, e.start))
    return outermost_tags(n_words, (e[:3] for e in order))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True)) if logits.size else logits
    return shifted / shifted.sum(-1, keepdims=True) if logits.size else logits


def scored_positions(row: Row) -> tuple[list[int], list[int]]:
    """(position, sentence word) of the first sub-token of each word the row scores, in order."""
    positions, words = [], []
    for position, word in enumerate(row.word_ids):
        if word is not None and word in row.scored and (not position or row.word_ids[position - 1] != word):
            positions.append(position)
            words.append(word)
    return positions, words


def last_positions(row: Row) -> list[int]:
    """The position of the last sub-token of each word the row scores, in order."""
    return [position for position, word in enumerate(row.word_ids) if word is not None and word in row.scored
            and (position + 1 == len(row.word_ids) or row.word_ids[position + 1] != word)]  # fmt: skip


def segments(batch: Mapping[str, Any]) -> list[tuple[int, np.ndarray]]:
    """Each sentence (or window) of a training or evaluation batch as (its row in the encoded rows' order, the flat
    positions (row * width + column) of its scored words' first sub-tokens). A packed batch holds several sentences
    a row, laid out in `batch["order"]`'s order; a padded one, one a row."""
    flat = (batch["labels"].flatten() != IGNORE).nonzero().squeeze(1).cpu().numpy()
    order = batch["order"].tolist() if "order" in batch else list(range(len(batch["labels"])))
    bounds = np.cumsum([0, *batch["words"][order].tolist()])
    return [(row, flat[bounds[k] : bounds[k + 1]]) for k, row in enumerate(order)]


class Head(nn.Module):
    """The part of a model above the encoder's hidden states, chosen by config (`head=<name>`; conf/head/). It owns:
    the transformers model under it (`load_backbone`), its loss and its training-time scores (`loss`, `validate`),
    what it records in an export (`record`, `save`, `load`), and how every reader reads it: the graph runners
    execute (`graph`: named `inputs` in, named `outputs` out; the torch runner and the ONNX export both run it),
    the batch inputs of encoded rows, and the decoding of the outputs into entities (`collect`, `decode`)."""

    name: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask")
    outputs: ClassVar[tuple[str, ...]] = ("logits",)
    backbone: ClassVar[type]  # the Auto class its transformers model loads with
    # whether validation's outputs are what the inference graph gives for the same input_ids (replayed for the
    # export's temperature instead of reading the split again)
    replays_validation: ClassVar[bool] = False
    lr_scale: float = 1.0  # the head's own parameters learn at model.lr times this

    def __init__(self, labels: Sequence[str], **options: Any) -> None:
        super().__init__()
        if options:
            raise TypeError(f"head {self.name} takes no options {sorted(options)}")
        self.labels = list(labels)
        self.types = entity_types(self.labels)

    @classmethod
    def configure(cls, options: dict[str, Any], train: Callable[[], TrainSentences]) -> dict[str, Any]:
        """The head's options with what the training sentences decide filled in (a span head's widest span); `train`
        gives them, (words, gold entities) each, when called."""
        return options

    def record(self) -> dict[str, Any]:
        """What the export's config.json records as `lit_ner_head`: everything `head_of` needs to rebuild it."""
        return {"name": self.name}

    # ---- training
    def load_backbone(self, name_or_path: str, label_mismatch: str = "error") -> PreTrainedModel:
        raise NotImplementedError

    def attach(self, config: PretrainedConfig) -> None:
        """Create the parameters whose size the encoder decides (called once its config is known)."""

    def features(self, model: PreTrainedModel, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """What the loss and the decoding read: here the backbone's logits, of a packed batch (sentences sharing rows,
        positions restarting) or a padded one."""
        if "position_ids" in batch:
            return model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    def loss(self, features: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def validate(self, features: torch.Tensor, batch: Mapping[str, Any], metrics: Sequence[Any]) -> None:
        """Feed the batch's predicted and gold entities to `metrics` (lit_ner.metrics.EntityMetric)."""
        raise NotImplementedError

    # ---- the export
    def save(self, folder: Path) -> None:
        """Files of its own beside the transformers model's (none unless the head has weights of its own)."""

    def load(self, folder: Path) -> None:
        """Read what `save` wrote."""

    # ---- reading a trained model
    def graph(self, model: PreTrainedModel) -> nn.Module:
        """The module runners execute: `inputs` as keyword tensors in, `outputs` out, in order."""
        raise NotImplementedError

    def batch_inputs(self, rows: Sequence[Row], pad_id: int) -> dict[str, torch.Tensor]:
        """The graph's inputs for encoded rows: right-padded ids and their attention mask."""
        ids = [row.input_ids for row in rows]
        return {"input_ids": padded(ids, pad_id), "attention_mask": attention_mask(ids)}

    def new_reading(self, n_words: int) -> Any:
        """The empty reading of a sentence of `n_words` words, which `collect` fills from its rows."""
        raise NotImplementedError

    def collect(self, outputs: Mapping[str, np.ndarray], rows: Sequence[tuple[int, Row]], readings: list, aggregation: str) -> None:
        """Write one batch's outputs into the readings of the sentences its rows belong to."""
        raise NotImplementedError

    def decode(self, reading: Any, temperature: float, aggregation: str) -> Decoded:
        raise NotImplementedError
