"""Reading a trained model, the one path every reader takes (evaluate, calibration, NerPredictor and predict, the
service, the benchmarks): words -> the rows training encodes (windows, document context) -> a runner's outputs ->
the head's decoding into entities (lit_ner.heads). What evaluate scores is what predict and the service return."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from lit_ner.data.align import neighbour_words
from lit_ner.data.batching import SortedBatchSampler
from lit_ner.data.encode import encode_rows
from lit_ner.data.reading import Reading
from lit_ner.data.schemes import entity_types
from lit_ner.data.words import pretokenizer
from lit_ner.errors import ConfigError
from lit_ner.heads import AGGREGATIONS, Decoded, Head, Thresholds
from lit_ner.runners import Runner


@dataclass(frozen=True)
class Calibration:
    """What scores mean, recorded in the export (`lit_ner_calibration`): the temperature the logits are divided by
    before the softmax (fitted on validation at the end of training) and the entity score thresholds chosen by
    `lit_ner.evaluate save_thresholds=true` (none: every entity is kept)."""

    temperature: float = 1.0
    thresholds: dict[str, float] | None = None

    @classmethod
    def of(cls, config: Any) -> "Calibration":
        recorded = getattr(config, "lit_ner_calibration", None) or {}
        return cls(float(recorded.get("temperature") or 1.0), recorded.get("thresholds") or None)


def parse_thresholds(value: Any) -> Thresholds:
    """The `min_score=` of predict, serve and evaluate: `0.5` (every type), `PER:0.6,LOC:0.4` or a mapping (per
    type; the other types keep every entity); None: not given."""
    if value is None:
        return None
    try:
        if isinstance(value, Mapping):
            return {str(t): float(v) for t, v in value.items()}
        if isinstance(value, str) and ":" in value:
            return {t.strip(): float(v) for t, v in (pair.split(":") for pair in value.split(","))}
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"min_score={value}: give a score (0.5) or scores by type (PER:0.6,LOC:0.4)") from None


def checked_thresholds(thresholds: Thresholds, labels: Sequence[str]) -> Thresholds:
    """`thresholds` if every type it names is one of the labels' (a misspelt type would keep every entity)."""
    if isinstance(thresholds, dict):
        types = entity_types(labels)
        unknown = sorted(set(thresholds) - set(types))
        if unknown:
            raise ConfigError(f"min_score: {', '.join(unknown)} is no entity type of this model ({', '.join(types)})")
    return thresholds


class Tagger:
    """The entities of sentences from a model: the rows training encoded, batched in length order (as evaluation
    batches them, so the same sentences give the same batches and the same numbers), run, and decoded by the head."""

    def __init__(
        self,
        runner: Runner,
        tokenizer: Any,
        head: Head,
        reading: Reading,
        batch_size: int = 64,
        aggregation: str = "first",
        temperature: float = 1.0,
        thresholds: Thresholds = None,
        max_tokens: int | None = None,
    ) -> None:
        """`temperature` divides the logits before the softmax (scores only: decoding reads the logits);
        `thresholds` (min_score): entities scoring below them are dropped; `aggregation`: how a token head reads a
        word's sub-tokens; `max_tokens`: padded tokens a batch, 16 a row of `batch_size` unless given
        (data.max_tokens), as evaluation's batches."""
        if aggregation not in AGGREGATIONS or (aggregation != "first" and head.name != "token"):
            raise ConfigError(
                f"aggregation={aggregation}: choose one of {', '.join(AGGREGATIONS)} (the {head.name} head reads "
                "each word's first sub-token: first)"
            )
        pretokenizer(reading.pretokenizer)  # an unknown name stops here, naming data.pretokenizer
        self.runner, self.tokenizer, self.head, self.labels = runner, tokenizer, head, head.labels
        self.reading, self.batch_size, self.aggregation = reading, batch_size, aggregation
        self.max_tokens = max_tokens or 16 * batch_size
        self.temperature = temperature
        self.thresholds = checked_thresholds(parse_thresholds(thresholds), head.labels)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def __call__(
        self, sentences: Sequence[Sequence[str]], documents: Sequence[Any] | None = None, progress: bool = False
    ) -> list[Decoded]:
        """Each sentence as the head decodes it, entities under the thresholds dropped. `documents` (one id a
        sentence; adjacent sentences with the same id form a document): with a model trained with document
        context, each sentence is read between its neighbours."""
        return [decoded.kept(self.thresholds) for decoded in self.read(sentences, documents, progress)]

    def read(
        self, sentences: Sequence[Sequence[str]], documents: Sequence[Any] | None = None, progress: bool = False
    ) -> list[Decoded]:
        """Each sentence as the head decodes it, every entity kept (calibration measures them all)."""
        reading = self.reading
        context = None
        if reading.context == "document" and reading.context_tokens and documents is not None:
            if len(documents) != len(sentences):
                raise ConfigError(f"documents: {len(documents)} ids for {len(sentences)} sentences; one a sentence")
            words = neighbour_words(sentences, documents, reading.context_tokens)
            context = ([left for left, _ in words], [right for _, right in words])
        rows = encode_rows(
            self.tokenizer, sentences, reading.max_length, reading.window_context, context, reading.context_tokens
        )
        owners = [i for i, _ in rows]
        # evaluation's own batches: whole sentences in length order, at most batch_size sentences and max_tokens padded
        # tokens a batch (the DataModule's eval_dataloader cuts the same)
        batches = SortedBatchSampler([len(r.input_ids) for _, r in rows], owners, self.batch_size, self.max_tokens)
        readings = [self.head.new_reading(len(words)) for words in sentences]
        with tqdm(total=len(sentences), unit="sentence", disable=not progress or not sentences) as bar:
            for batch in batches:
                picked = [rows[i] for i in batch]
                outputs = self.runner(self.head.batch_inputs([row for _, row in picked], self.pad_id))
                self.head.collect(outputs, picked, readings, self.aggregation)
                bar.update(len({owners[i] for i in batch}))
        return [self.head.decode(r, self.temperature, self.aggregation) for r in readings]
