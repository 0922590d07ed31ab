"""Reading a trained model, the one path every reader takes (evaluate, NerPredictor and predict, serve, benchmarks):
words -> the rows training encodes (windows, document context) -> a runner's logits -> one tag and score per word ->
entities by the span decoding of `data.schemes`. What evaluate scores is what predict and the service return."""

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lit_ner.data.align import neighbour_words
from lit_ner.data.batching import SortedBatchSampler
from lit_ner.data.encode import encode_rows, position_limit
from lit_ner.data.schemes import entity_spans, split_tag
from lit_ner.data.words import pretokenizer
from lit_ner.errors import ConfigError
from lit_ner.models import recorded_reading

AGGREGATIONS = ("first", "average", "max")  # how a word's sub-token scores become the word's


@dataclass(frozen=True)
class Reading:
    """How a model reads sentences: the data settings training encoded with, recorded in the export's config.json
    (`lit_ner_data`), so that every later reading encodes the same rows. The DataModule takes its defaults from here."""

    max_length: int = 256  # sub-tokens a row, special tokens included; longer sentences are read in windows
    window_context: int = 32  # sub-tokens of neighbouring words on each side of a window
    context: str = "sentence"  # or "document": a sentence is read between its neighbours in the document
    context_tokens: int = 64  # sub-tokens of document context a side
    label_all_tokens: bool = False  # trained on every sub-token (else on each word's first)
    pretokenizer: str = "punctuation"  # how raw text is split into words (lit_ner.data.words)

    @classmethod
    def of(cls, settings: Any) -> "Reading":
        """The reading in a mapping of data settings (a data config, or an export's `lit_ner_data`); keys it lacks
        keep their defaults (an export written before a key was recorded)."""
        settings = settings or {}
        return cls(**{f.name: settings[f.name] for f in fields(cls) if settings.get(f.name) is not None})

    def record(self) -> dict[str, Any]:
        return asdict(self)


def trained_reading(config: Any) -> Reading:
    """The reading recorded in a model's config (an export); the defaults for any other model, within the positions
    it reads."""
    recorded = recorded_reading(config)
    if recorded.get("max_length") is None:
        recorded["max_length"] = min(Reading.max_length, position_limit(config) or Reading.max_length)
    return Reading.of(recorded)


Thresholds = float | dict[str, float] | None  # the lowest entity score kept: one for all types, or per type


@dataclass
class WordTags:
    """A sentence as the model reads it: one tag, its probability, and the label probabilities, a word."""

    tags: list[str]
    scores: np.ndarray  # (words,): the probability of each word's tag
    probabilities: np.ndarray  # (words, labels)
    logits: np.ndarray | None = None  # (words, labels): each word's first sub-token logits (aggregation "first")

    def entities(self) -> list[tuple[str, int, int, float]]:
        """(type, first word, end word (exclusive), score) of each entity, decoded as seqeval's default mode reads
        the tags; the score is the mean of its words' tag probabilities."""
        return [(t, s, e, float(self.scores[s:e].mean())) for t, s, e in entity_spans(self.tags)]

    def kept(self, thresholds: Thresholds, o_index: int) -> "WordTags":
        """The tags with every entity scoring below its type's threshold read as O (no entity), those words' scores
        the probability of O (label `o_index`)."""
        if not thresholds:
            return self
        tags, scores = list(self.tags), self.scores.copy()
        for type_, start, end, score in self.entities():
            if score < (thresholds.get(type_, 0.0) if isinstance(thresholds, dict) else thresholds):
                tags[start:end] = ["O"] * (end - start)
                scores[start:end] = self.probabilities[start:end, o_index]
        return WordTags(tags, scores, self.probabilities, self.logits)


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
        types = sorted({split_tag(label)[1] for label in labels} - {None})
        unknown = sorted(set(thresholds) - set(types))
        if unknown:
            raise ConfigError(f"min_score: {', '.join(unknown)} is no entity type of this model ({', '.join(types)})")
    return thresholds


class TorchRunner:
    """Logits of a torch token classifier; with `compile`, torch.compile with frozen weights (faster on a CPU once
    compiled; each new family of shapes compiles first, tens of seconds)."""

    def __init__(self, model: torch.nn.Module, compile: bool = False) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.compiled = compile
        self.forward = torch.compile(model, dynamic=True) if compile else model

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        twice = self.compiled and len(input_ids) == 1  # a batch of one is a shape of its own: a second compile
        if twice:
            input_ids, attention_mask = input_ids.repeat(2, 1), attention_mask.repeat(2, 1)
        with torch.inference_mode(), self._frozen():
            output = self.forward(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device))
        logits = output.logits.float().cpu().numpy()
        return logits[:1] if twice else logits

    def _frozen(self) -> contextlib.AbstractContextManager:
        """Frozen weights, which inductor folds into the graph (a global that inductor reads when a graph compiles,
        so set for these calls only)."""
        if not self.compiled:
            return contextlib.nullcontext()
        import torch._inductor.config

        return torch._inductor.config.patch(freezing=True)


# (input_ids, attention_mask) -> logits (rows, tokens, labels)
Runner = Callable[[torch.Tensor, torch.Tensor], np.ndarray]


class Replay:
    """A runner that answers with logits the same model already gave for the same batch (`recorded`: (input_ids,
    logits) pairs, such as training's validation pass of the epoch it exports) and runs `fallback` on any other."""

    def __init__(self, recorded: Sequence[tuple[torch.Tensor, np.ndarray]], fallback: Runner) -> None:
        self.recorded = {self._key(ids): logits for ids, logits in recorded}
        self.fallback, self.replayed = fallback, 0

    @staticmethod
    def _key(input_ids: torch.Tensor) -> tuple:
        return tuple(input_ids.shape), input_ids.numpy().tobytes()

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        logits = self.recorded.get(self._key(input_ids))
        if logits is None:
            return self.fallback(input_ids, attention_mask)
        self.replayed += 1
        return logits


class WordTagger:
    """One tag a word from a model: the rows training encoded, batched in length order (as evaluation batches
    them, so the same sentences give the same batches and the same numbers), read on each word's sub-tokens."""

    def __init__(
        self,
        runner: Runner,
        tokenizer: Any,
        labels: Sequence[str],
        reading: Reading,
        batch_size: int = 64,
        aggregation: str = "first",
        temperature: float = 1.0,
        thresholds: Thresholds = None,
        max_tokens: int | None = None,
    ) -> None:
        """`temperature` divides the logits before the softmax (scores only: the tags of "first" are the logits'
        arg-max); `thresholds` (min_score): entities scoring below them read as O; `max_tokens`: padded tokens a
        batch, 16 a row of `batch_size` unless given (data.max_tokens), as evaluation's batches."""
        if aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation={aggregation}: choose one of {', '.join(AGGREGATIONS)}")
        pretokenizer(reading.pretokenizer)  # an unknown name stops here, naming data.pretokenizer
        self.runner, self.tokenizer, self.labels = runner, tokenizer, list(labels)
        self.reading, self.batch_size, self.aggregation = reading, batch_size, aggregation
        self.max_tokens = max_tokens or 16 * batch_size
        self.temperature, self.thresholds = temperature, checked_thresholds(parse_thresholds(thresholds), labels)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def __call__(
        self, sentences: Sequence[Sequence[str]], documents: Sequence[Any] | None = None, progress: bool = False
    ) -> list[WordTags]:
        """The word tags of each sentence. `documents` (one id a sentence; adjacent sentences with the same id form
        a document): with a model trained with document context, each sentence is read between its neighbours."""
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
        probabilities = [np.zeros((len(words), len(self.labels)), dtype=np.float32) for words in sentences]
        with tqdm(total=len(sentences), unit="sentence", disable=not progress or not sentences) as bar:
            for batch in batches:
                self._read([rows[i] for i in batch], probabilities)
                bar.update(len({owners[i] for i in batch}))
        return [self._tags(p).kept(self.thresholds, self.labels.index("O")) for p in probabilities]

    def _read(self, rows: list[tuple[int, Any]], out: list[np.ndarray]) -> None:
        """Run one batch and write each scored word's reading into `out[sentence][word]`: the logits of its first
        sub-token, or with another aggregation its sub-tokens' label probabilities reduced to one."""
        longest = max(len(row.input_ids) for _, row in rows)
        input_ids = torch.full((len(rows), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for n, (_, row) in enumerate(rows):  # right padding, as training's batches
            input_ids[n, : len(row.input_ids)] = torch.tensor(row.input_ids)
            mask[n, : len(row.input_ids)] = 1
        logits = self.runner(input_ids, mask)
        first = self.aggregation == "first"
        # every sub-token read: (batch row, position), and the (sentence, word) it belongs to
        at, words = [], []
        for n, (sentence, row) in enumerate(rows):
            for position, word in enumerate(row.word_ids):
                if word is None or word not in row.scored:
                    continue
                if first and position and row.word_ids[position - 1] == word:
                    continue  # not the word's first sub-token
                at.append((n, position))
                words.append((sentence, word))
        index = np.array(at, dtype=np.int64).reshape(-1, 2)
        read = logits[index[:, 0], index[:, 1]]
        if first:
            for k, (sentence, word) in enumerate(words):
                out[sentence][word] = read[k]
            return
        probabilities = softmax(read / self.temperature)
        grouped: dict[tuple[int, int], list[int]] = {}
        for k, key in enumerate(words):
            grouped.setdefault(key, []).append(k)
        for (sentence, word), ks in grouped.items():
            if self.aggregation == "average":
                out[sentence][word] = probabilities[ks].mean(0)
            else:  # "max": the sub-token that is surest of its label
                out[sentence][word] = probabilities[ks[int(probabilities[ks].max(-1).argmax())]]

    def _tags(self, read: np.ndarray) -> WordTags:
        """Tags from `_read`'s output: with `first`, the arg-max of the logits (as training's metric reads them)."""
        probabilities = softmax(read / self.temperature) if self.aggregation == "first" else read
        best = (read if self.aggregation == "first" else probabilities).argmax(-1)
        logits = read if self.aggregation == "first" else None
        scores = probabilities[np.arange(len(best)), best]
        return WordTags([self.labels[i] for i in best], scores, probabilities, logits)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True)) if logits.size else logits
    return shifted / shifted.sum(-1, keepdims=True) if logits.size else logits
