"""`NerPredictor`: the entities of raw texts or pre-split words from a trained model, read through
`lit_ner.inference`, the path evaluate scores (the same rows, the same decoding). transformers only: no Lightning,
no Hydra."""

from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path
from typing import Any, TypedDict

from lit_ner.data.reading import Reading
from lit_ner.data.words import pretokenizer
from lit_ner.heads import Decoded
from lit_ner.inference import Tagger, Thresholds
from lit_ner.models import EXPORTED, OpenedModel, inspect_model, open_model


class Entity(TypedDict, total=False):
    """An entity as NerPredictor, lit_ner.predict and the service return it: `text == source[start:end]` (character
    offsets into the text, or into `" ".join(words)` for pre-split words), its type and score, and the words it
    covers, `word_start` to `word_end` (exclusive)."""

    text: str
    type: str
    start: int
    end: int
    score: float
    word_start: int
    word_end: int


def word_starts(words: Sequence[str]) -> list[int]:
    """Where each word starts in `" ".join(words)`."""
    return list(accumulate((len(word) + 1 for word in words[:-1]), initial=0))


class NerPredictor:
    """Entities of raw texts (`predictor(texts)`) or of pre-split words (`predictor.words(sentences)`), read as
    `lit_ner.evaluate` reads them (`lit_ner.inference`). Entities of a span head trained on nested data may nest."""

    def __init__(
        self,
        opened: OpenedModel,
        aggregation_strategy: str = "first",
        batch_size: int = 64,
        reading: Reading | None = None,
        min_score: Thresholds = None,
    ) -> None:
        """`opened`: the model (lit_ner.models.open_model), with its labels, head, calibration (temperature, stored
        thresholds) and, unless `reading` is given, the reading its training recorded. `min_score`: the lowest
        entity score kept (one value, or one a type), instead of the thresholds stored in the export."""
        self.opened, self.runner, self.tokenizer = opened, opened.runner, opened.tokenizer
        self.batch_size = batch_size
        self.reading = opened.read_as(reading.record()) if reading else opened.reading
        self.split = pretokenizer(self.reading.pretokenizer)
        self.calibration = opened.calibration
        thresholds = self.calibration.thresholds if min_score is None else min_score
        self.tagger = Tagger(self.runner, self.tokenizer, opened.head, self.reading, batch_size, aggregation_strategy,
                             self.calibration.temperature, thresholds)  # fmt: skip

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        aggregation_strategy: str = "first",
        max_length: int | None = None,
        window_context: int | None = None,
        batch_size: int = 64,
        device: str | None = None,
        backend: str = "torch",
        quantize: str | None = None,
        compile: bool = False,
        min_score: Thresholds = None,
    ) -> "NerPredictor":
        """Load a folder written by `lit_ner.export.export_model` (or any token-classification model: a folder, or
        a Hub name when the Hub is reachable; or a lit_ner checkpoint); weights from safetensors only.
        `backend="onnx"` runs the folder's ONNX model (`quantize="int8"`: its int8 one) in ONNX Runtime on the CPU
        (`lit_ner.export_onnx`). `max_length`/`window_context` replace the export's recorded reading."""
        opened = open_model(inspect_model(str(folder), EXPORTED), backend, quantize, device, compile)
        reading = opened.read_as({"max_length": max_length, "window_context": window_context})
        return cls(opened, aggregation_strategy, batch_size, reading, min_score)

    def __call__(self, texts: str | Sequence[str], progress: bool = False) -> list[Entity] | list[list[Entity]]:
        """The entities of one text, or of each text; `text[start:end] == entity["text"]`. A text is split into
        words by the export's pre-tokenizer (data.pretokenizer) and read as one sentence (in windows when long)."""
        docs = [texts] if isinstance(texts, str) else list(texts)
        found = [found for found, _ in self.texts(docs, progress)]
        return found[0] if isinstance(texts, str) else found

    def texts(self, texts: Sequence[str], progress: bool = False) -> list[tuple[list[Entity], Decoded]]:
        """Each text's entities (as `__call__` gives them) with the head's reading of it (`confidence`: how sure the
        model is of its least sure decision, entity or not)."""
        split = [self.split(text) for text in texts]
        tagged = self.tagger([[w for w, _, _ in words] for words in split], progress=progress)
        return [(entities(text, [(s, e) for _, s, e in words], t), t) for text, words, t in zip(texts, split, tagged)]

    def words(
        self, sentences: Sequence[Sequence[str]], progress: bool = False, documents: Sequence[Any] | None = None
    ) -> list[list[Entity]]:
        """Entities of pre-split sentences: offsets index `" ".join(words)`; words [word_start, word_end) hold them.

        `documents` (one id a sentence; adjacent sentences with the same id form a document): for a model trained
        with data.context=document, each sentence is read with its document neighbours, as training read it.
        """
        return [entities(" ".join(words), spans(words), tags) for words, tags in
                zip(sentences, self.word_tags(sentences, progress, documents))]  # fmt: skip

    def word_tags(
        self, sentences: Sequence[Sequence[str]], progress: bool = False, documents: Sequence[Any] | None = None
    ) -> list[Decoded]:
        """Each sentence as the head reads it: its entities and one tag a word (what `words` returns, and what
        evaluate scores)."""
        return self.tagger([list(words) for words in sentences], documents, progress)


def spans(words: Sequence[str]) -> list[tuple[int, int]]:
    """(start, end) of each word in `" ".join(words)`."""
    return [(start, start + len(word)) for word, start in zip(words, word_starts(words))]


def entities(text: str, offsets: Sequence[tuple[int, int]], decoded: Decoded) -> list[Entity]:
    """The entities of a sentence as the head decoded them, with character offsets into `text` (`offsets`: each
    word's)."""
    return [
        {"text": text[offsets[first][0] : offsets[end - 1][1]], "type": type_, "start": offsets[first][0],
         "end": offsets[end - 1][1], "score": score, "word_start": first, "word_end": end}
        for type_, first, end, score in decoded.entities
    ]  # fmt: skip
