"""`NerPredictor`: the entities of raw texts or pre-split words from an exported model, read through
`lit_ner.inference`, the path evaluate scores (the same rows, the same word tags). transformers only: no Lightning,
no Hydra."""

from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, PretrainedConfig, PreTrainedTokenizerBase

from lit_ner.data.encode import load_tokenizer, position_limit
from lit_ner.data.words import pretokenizer
from lit_ner.errors import ConfigError
from lit_ner.inference import (
    Calibration, Reading, Runner, Thresholds, TorchRunner, WordTagger, WordTags, trained_reading,
)
from lit_ner.models import EXPORTED, labels_of, load_classifier, local_or_hub

Entity = dict[str, Any]  # {"text", "type", "start", "end", "score"} (+ "word_start", "word_end" for pre-split words)


def word_starts(words: Sequence[str]) -> list[int]:
    """Where each word starts in `" ".join(words)`."""
    return list(accumulate((len(word) + 1 for word in words[:-1]), initial=0))


def checked_reading(reading: Reading, config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> Reading:
    """`reading` if a row of its max_length fits the model and leaves room for text; else a ConfigError."""
    limit = position_limit(config)
    if limit and reading.max_length > limit:  # positions past the limit would index outside the embeddings
        raise ConfigError(f"max_length={reading.max_length}: above the {limit} positions the model reads; give less")
    if reading.max_length - tokenizer.num_special_tokens_to_add() < 1:
        raise ConfigError(
            f"max_length={reading.max_length}: leaves no room for text beside the model's "
            f"{tokenizer.num_special_tokens_to_add()} special tokens"
        )
    return reading


class NerPredictor:
    """Entities of raw texts (`predictor(texts)`) or of pre-split words (`predictor.words(sentences)`), read as
    `lit_ner.evaluate` reads them (`lit_ner.inference`)."""

    def __init__(
        self,
        runner: Runner,
        tokenizer: PreTrainedTokenizerBase,
        config: PretrainedConfig,
        aggregation_strategy: str = "first",
        batch_size: int = 64,
        reading: Reading | None = None,
        min_score: Thresholds = None,
    ) -> None:
        """`runner`: what computes the logits (`TorchRunner`, `OnnxTokenClassifier`); `config`: the model's, for its
        labels, its calibration (temperature, stored thresholds) and, unless `reading` is given, the reading its
        training recorded. `min_score`: the lowest entity score kept (one value, or one a type), instead of the
        thresholds stored in the export."""
        self.runner, self.tokenizer, self.config, self.batch_size = runner, tokenizer, config, batch_size
        self.reading = checked_reading(reading or trained_reading(config), config, tokenizer)
        self.split = pretokenizer(self.reading.pretokenizer)
        self.calibration = Calibration.of(config)
        thresholds = self.calibration.thresholds if min_score is None else min_score
        self.tagger = WordTagger(runner, tokenizer, labels_of(config), self.reading, batch_size, aggregation_strategy,
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
        a Hub name when the Hub is reachable); weights from safetensors only. `backend="onnx"` runs the folder's
        ONNX model (`quantize="int8"`: its int8 one) in ONNX Runtime on the CPU (`lit_ner.export_onnx`).
        `max_length`/`window_context` replace the export's recorded reading (rows and windows)."""
        if backend not in ("torch", "onnx") or (quantize is not None and backend != "onnx"):
            raise ConfigError(f"backend={backend}, quantize={quantize}: backend is torch or onnx; int8 needs onnx")
        if compile and backend != "torch":
            raise ConfigError("compile=true compiles the torch model: not with backend=onnx")
        source = local_or_hub(str(folder), "model", EXPORTED)
        if backend == "onnx":
            from lit_ner.export_onnx import OnnxTokenClassifier

            config = AutoConfig.from_pretrained(source)
            runner: Runner = OnnxTokenClassifier(Path(source), quantize)
        else:
            model = load_classifier(source).to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
            config, runner = model.config, TorchRunner(model, compile)
        tokenizer = load_tokenizer(source)  # stops on missing tokenizer files rather than tagging every word [UNK]
        given = {"max_length": max_length, "window_context": window_context}
        reading = Reading.of(trained_reading(config).record() | {k: v for k, v in given.items() if v is not None})
        return cls(runner, tokenizer, config, aggregation_strategy, batch_size, reading, min_score)

    def __call__(self, texts: str | Sequence[str], progress: bool = False) -> list[Entity] | list[list[Entity]]:
        """The entities of one text, or of each text; `text[start:end] == entity["text"]`. A text is split into
        words by the export's pre-tokenizer (data.pretokenizer) and read as one sentence (in windows when long)."""
        docs = [texts] if isinstance(texts, str) else list(texts)
        found = [found for found, _ in self.texts(docs, progress)]
        return found[0] if isinstance(texts, str) else found

    def texts(self, texts: Sequence[str], progress: bool = False) -> list[tuple[list[Entity], WordTags]]:
        """Each text's entities (as `__call__` gives them) with its word tags (their scores: how sure the model is
        of every word, entity or not)."""
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
    ) -> list[WordTags]:
        """Each word's tag and score (what `words` turns into entities, and what evaluate scores)."""
        return self.tagger([list(words) for words in sentences], documents, progress)


def spans(words: Sequence[str]) -> list[tuple[int, int]]:
    """(start, end) of each word in `" ".join(words)`."""
    return [(start, start + len(word)) for word, start in zip(words, word_starts(words))]


def entities(text: str, offsets: Sequence[tuple[int, int]], tagged: WordTags) -> list[Entity]:
    """The entities of a sentence's word tags, with character offsets into `text` (`offsets`: each word's)."""
    return [
        {"text": text[offsets[first][0] : offsets[end - 1][1]], "type": type_, "start": offsets[first][0],
         "end": offsets[end - 1][1], "score": score, "word_start": first, "word_end": end}
        for type_, first, end, score in tagged.entities()
    ]  # fmt: skip
