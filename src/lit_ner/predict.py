"""Tag new text with an exported model: `NerPredictor`, and `python -m lit_ner.predict model=<folder> text="..."`.
Every reading goes through `lit_ner.inference`, the path evaluate scores: the same rows, the same word tags."""

import json
import sys
from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForTokenClassification, PretrainedConfig, PreTrainedTokenizerBase

from lit_ner.data.encode import load_tokenizer, position_limit  # transformers only: no Lightning, no Hydra
from lit_ner.data.formats import conll_lines
from lit_ner.data.words import pretokenizer
from lit_ner.errors import ConfigError, DataError, key_values, reported, true_or_false
from lit_ner.inference import AGGREGATIONS, Reading, Runner, TorchRunner, WordTagger, WordTags, trained_reading
from lit_ner.models import local_or_hub

EXPORTED = "Give the folder lit_ner.train exported: <run_dir>/model (config.json, model.safetensors, tokenizer files)."
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
    ) -> None:
        """`runner`: what computes the logits (`TorchRunner`, `OnnxTokenClassifier`); `config`: the model's, for its
        labels and, unless `reading` is given, the reading its training recorded."""
        if aggregation_strategy not in AGGREGATIONS:
            raise ConfigError(f"aggregation={aggregation_strategy}: choose one of {', '.join(AGGREGATIONS)}")
        self.runner, self.tokenizer, self.config, self.batch_size = runner, tokenizer, config, batch_size
        self.reading = checked_reading(reading or trained_reading(config), config, tokenizer)
        self.split = pretokenizer(self.reading.pretokenizer)
        labels = [config.id2label[i] for i in range(len(config.id2label))]
        self.tagger = WordTagger(runner, tokenizer, labels, self.reading, batch_size, aggregation_strategy)

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
        try:
            if backend == "onnx":
                from lit_ner.export_onnx import OnnxTokenClassifier

                config = AutoConfig.from_pretrained(source)
                runner: Runner = OnnxTokenClassifier(Path(source), quantize)
            else:
                device = device or ("cuda" if torch.cuda.is_available() else "cpu")
                model = AutoModelForTokenClassification.from_pretrained(source, use_safetensors=True).to(device)
                config, runner = model.config, TorchRunner(model, compile)
        except OSError as err:  # e.g. config.json without model.safetensors: a run or cache folder, not an export
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ConfigError(f"model={folder}: cannot load a model from it ({reason}). {EXPORTED}") from None
        tokenizer = load_tokenizer(source)  # stops on missing tokenizer files rather than tagging every word [UNK]
        given = {"max_length": max_length, "window_context": window_context}
        reading = Reading.of(trained_reading(config).record() | {k: v for k, v in given.items() if v is not None})
        return cls(runner, tokenizer, config, aggregation_strategy, batch_size, reading)

    def __call__(self, texts: str | Sequence[str], progress: bool = False) -> list[Entity] | list[list[Entity]]:
        """The entities of one text, or of each text; `text[start:end] == entity["text"]`. A text is split into
        words by the export's pre-tokenizer (data.pretokenizer) and read as one sentence (in windows when long)."""
        docs = [texts] if isinstance(texts, str) else list(texts)
        split = [self.split(text) for text in docs]
        tagged = self.tagger([[w for w, _, _ in words] for words in split], progress=progress)
        found = [entities(text, [(s, e) for _, s, e in words], t) for text, words, t in zip(docs, split, tagged)]
        return found[0] if isinstance(texts, str) else found

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


USAGE = (
    'usage: python -m lit_ner.predict model=<folder> (text="..." | input=<file>) [output=<file>] '
    "[aggregation=first|average|max] [batch_size=64] [device=cpu|cuda] [max_length=N] [window_context=N] "
    "[backend=torch|onnx] [quantize=int8] [compile=true|false] [format=conll]"
)
OPTIONS = {"model", "text", "input", "output", "aggregation", "batch_size", "device", "max_length", "window_context",
           "backend", "quantize", "compile", "format"}  # fmt: skip


def parse_args(argv: Sequence[str]) -> dict[str, str]:
    """`key=value` arguments, checked against OPTIONS."""
    args = key_values(argv, OPTIONS, ("model",), USAGE)
    if ("text" in args) == ("input" in args):
        raise ConfigError(f"give model= and one of text= or input=\n{USAGE}")
    return args


def whole_number(args: dict[str, str], key: str, minimum: int = 1) -> int | None:
    """args[key] as an int, None when not given; 0 would otherwise pass silently as "not given" (`x or default`)."""
    if key not in args:
        return None
    if not args[key].isdigit() or int(args[key]) < minimum:
        raise ConfigError(f"{key}={args[key]}: expected a whole number, {minimum} or more")
    return int(args[key])


def read_documents(path: Path) -> list[dict[str, Any]]:
    """Records to tag: plain text, one document a line; or (.jsonl, .json) JSON lines with `text` or `tokens` (and
    optionally `document`: consecutive `tokens` records with the same value are the sentences of one document)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"input={path}: cannot read the file ({err.strerror})") from None
    json_lines = path.suffix in (".jsonl", ".json")
    if json_lines and data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
        # one JSON array (what json.dump writes) fails on its first line with a message that does not say why
        raise DataError(f"input={path} must be JSON Lines: one object a line, not one JSON array")
    lines = data.splitlines()
    records = []
    for line_number, line in enumerate(lines, 1):
        try:
            text = line.decode("utf-8-sig" if line_number == 1 else "utf-8")  # a byte-order mark may open the file
            if json_lines and not text.strip():
                continue
            record = json.loads(text) if json_lines else {"text": text}
            fields = record if isinstance(record, dict) else {}
            tokens = fields.get("tokens")
            words_ok = isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)
            if not (words_ok or (tokens is None and isinstance(fields.get("text"), str))):
                raise ValueError('expected a JSON object with a "text" string or a "tokens" list of strings')
        except ValueError as err:  # undecodable bytes and bad JSON are ValueErrors too
            raise DataError(f"input={path}, line {line_number}: {err}") from None
        records.append(record)
    return records


def tag_conll(predictor: "NerPredictor", path: Path, progress: bool) -> str:
    """The file's lines with one more column: the predicted tag of each word (the file's own separator, tab or
    space), the tags lit_ner.evaluate writes; -DOCSTART- and blank lines as they were. The file is read as training
    reads CoNLL files (`conll_lines`), and a model trained with document context reads each sentence with the
    sentences of its -DOCSTART- document."""
    try:
        lines, sep, sentences, documents = conll_lines(path)
    except OSError as err:
        raise DataError(f"input={path}: cannot read the file ({err.strerror})") from None
    words = [[lines[n].split(sep)[0] for n in numbers] for numbers in sentences]
    tags = {}
    for numbers, tagged in zip(sentences, predictor.word_tags(words, progress=progress, documents=documents)):
        tags.update(zip(numbers, tagged.tags))
    out = [line + (sep or " ") + tags[n] if n in tags else line for n, line in enumerate(lines)]
    return "".join(line + "\n" for line in out)


def write_text(text: str, output: str | None) -> None:
    """To standard output, or to a file written under a temporary name first: an error leaves no partial output."""
    if output is None:
        sys.stdout.write(text)
        return
    path = Path(output)
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"output={output}: cannot write it ({err.strerror})") from None


def write_jsonl(records: list[dict[str, Any]], output: str | None) -> None:
    """One JSON object a line."""
    write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), output)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m lit_ner.predict` and `lit-ner-predict`."""
    with reported():
        args = parse_args(sys.argv[1:] if argv is None else argv)
        if args.get("format", "conll") != "conll":
            raise ConfigError(f"format={args['format']}: the one format to name is conll (others go by the suffix)")
        conll = "input" in args and (args.get("format") == "conll" or Path(args["input"]).suffix == ".conll")
        records = [] if conll else [{"text": args["text"]}] if "text" in args else read_documents(Path(args["input"]))
        predictor = NerPredictor.from_pretrained(
            args["model"], args.get("aggregation", "first"), whole_number(args, "max_length"),
            whole_number(args, "window_context", minimum=0), whole_number(args, "batch_size") or 64, args.get("device"),
            args.get("backend", "torch"), args.get("quantize"), bool(true_or_false(args, "compile")),
        )  # fmt: skip
        progress = "input" in args
        if conll:  # CoNLL in, CoNLL out: the same columns plus the predicted tag
            write_text(tag_conll(predictor, Path(args["input"]), progress), args.get("output"))
            return
        by_text = [r for r in records if "tokens" not in r]
        by_words = [r for r in records if "tokens" in r]
        for record, entities in zip(by_text, predictor([r["text"] for r in by_text], progress=progress)):
            record["entities"] = entities
        # adjacent records with the same "document" are one document (read together where the model was trained so)
        documents = [r["document"] if "document" in r else object() for r in by_words]
        found = predictor.words([r["tokens"] for r in by_words], progress=progress, documents=documents)
        for record, entities in zip(by_words, found):
            record["entities"] = entities
        write_jsonl(records, args.get("output"))


if __name__ == "__main__":
    main()
