"""Tag new text with an exported model: `NerPredictor`, and `python -m lit_ner.predict model=<folder> text="..."`.
Documents longer than the model are read in overlapping windows; transformers' own pipeline code groups entities."""

import contextlib
import json
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import (
    AutoModelForTokenClassification,
    BatchEncoding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TokenClassificationPipeline,
)
from transformers.pipelines.token_classification import AggregationStrategy

from lit_ner.data.align import fit_context, neighbour_words
from lit_ner.data.encode import load_tokenizer, position_limit, word_pieces  # transformers only: no Lightning, no Hydra
from lit_ner.errors import ConfigError, DataError, key_values, reported, true_or_false
from lit_ner.models import local_or_hub

STRATEGIES = ("simple", "first", "average", "max")
EXPORTED = "Give the folder lit_ner.train exported: <run_dir>/model (config.json, model.safetensors, tokenizer files)."
Entity = dict[str, Any]  # {"text", "type", "start", "end", "score"} (+ "word_start", "word_end" for pre-split words)


def word_starts(words: Sequence[str]) -> list[int]:
    """Where each word starts in `" ".join(words)`."""
    return list(accumulate((len(word) + 1 for word in words[:-1]), initial=0))


def token_sources(lengths: Sequence[int], overlap: int) -> list[tuple[int, int]]:
    """For each token of a document cut into windows of these lengths (consecutive ones share `overlap` tokens), the
    (window, index in it) to read its scores from: the window whose centre is nearest, where it has the most context."""
    best: list[tuple[float, int, int]] = []  # per document token: (distance from the centre, window, index)
    start = 0  # document position of the window's first token
    for window, length in enumerate(lengths):
        for index in range(length):
            candidate = (abs(index - (length - 1) / 2), window, index)
            if start + index == len(best):
                best.append(candidate)
            else:  # on a tie the earlier window wins
                best[start + index] = min(best[start + index], candidate)
        start += length - overlap
    return [(window, index) for _, window, index in best]


def trained_context(config: Any) -> int:
    """The sub-tokens of document context a side the model was trained with (data.context=document, written into
    config.json by the export); 0 when it read sentences alone."""
    data = getattr(config, "lit_ner_data", None) or {}
    return int(data.get("context_tokens") or 0) if data.get("context") == "document" else 0


class NerPredictor:
    """Entities of raw texts (`predictor(texts)`) or of pre-split words (`predictor.words(sentences)`)."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        aggregation_strategy: str = "simple",
        max_length: int | None = None,
        overlap: int | None = None,
        batch_size: int = 32,
        runner: Any = None,
        compile: bool = False,
    ) -> None:
        """`runner`: what computes the logits, when not the torch model (`OnnxTokenClassifier`). `compile`:
        torch.compile the model's forward with frozen weights (on a CPU faster once compiled; each new family of
        shapes compiles first, tens of seconds)."""
        if aggregation_strategy not in STRATEGIES:
            raise ConfigError(f"aggregation={aggregation_strategy}: choose one of {', '.join(STRATEGIES)}")
        if not tokenizer.is_fast:
            raise ConfigError("the model has a slow tokenizer: character offsets need a fast one (tokenizer.json)")
        self.model = model.eval()
        self.runner = runner or self.model
        self.tokenizer = tokenizer
        self.strategy = AggregationStrategy(aggregation_strategy)
        # tokenizers without a saved limit report a huge model_max_length: the position embeddings are the real one
        saved = tokenizer.model_max_length
        limit = position_limit(model.config)
        self.max_length = max_length or min(saved, limit or saved)
        if limit and self.max_length > limit:  # positions past the limit would index outside the embeddings
            raise ConfigError(
                f"max_length={self.max_length}: above the {limit} positions the model reads; give {limit} or less"
            )
        content = self.max_length - tokenizer.num_special_tokens_to_add()
        if content < 1:
            raise ConfigError(
                f"max_length={self.max_length}: leaves no room for text beside the model's "
                f"{tokenizer.num_special_tokens_to_add()} special tokens"
            )
        self.overlap = self.max_length // 4 if overlap is None else overlap  # tokens shared by consecutive windows
        if not 0 <= self.overlap < content:
            raise ConfigError(
                f"overlap={self.overlap}: must be at least 0 and below {content} (the tokens in a window)"
            )
        self.batch_size = batch_size
        if compile and runner is not None:
            raise ConfigError("compile=true compiles the torch model: not with backend=onnx")
        self.compiled = compile
        if compile:
            self.runner = torch.compile(self.model, dynamic=True)
        self.context_tokens = trained_context(model.config)
        # kept only for its postprocessing, so tokens are judged sub-words and grouped exactly as transformers does
        self.grouper = TokenClassificationPipeline(model=model, tokenizer=tokenizer, device=model.device)

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        aggregation_strategy: str = "simple",
        max_length: int | None = None,
        overlap: int | None = None,
        batch_size: int = 32,
        device: str | None = None,
        backend: str = "torch",
        quantize: str | None = None,
        compile: bool = False,
    ) -> "NerPredictor":
        """Load a folder written by `lit_ner.export.export_model` (or any token-classification model: a folder, or
        a Hub name when the Hub is reachable); weights from safetensors only. `backend="onnx"` runs the folder's
        ONNX model (`quantize="int8"`: its int8 one) in ONNX Runtime on the CPU (`lit_ner.export_onnx`)."""
        if backend not in ("torch", "onnx") or (quantize is not None and backend != "onnx"):
            raise ConfigError(f"backend={backend}, quantize={quantize}: backend is torch or onnx; int8 needs onnx")
        source = local_or_hub(str(folder), "model", EXPORTED)
        device = "cpu" if backend == "onnx" else device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            model = AutoModelForTokenClassification.from_pretrained(source, use_safetensors=True).to(device)
        except OSError as err:  # e.g. config.json without model.safetensors: a run or cache folder, not an export
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ConfigError(f"model={folder}: cannot load a model from it ({reason}). {EXPORTED}") from None
        tokenizer = load_tokenizer(source)  # stops on missing tokenizer files rather than tagging every word [UNK]
        runner = None
        if backend == "onnx":
            from lit_ner.export_onnx import OnnxTokenClassifier

            runner = OnnxTokenClassifier(Path(source), model.config, quantize)
        return cls(model, tokenizer, aggregation_strategy, max_length, overlap, batch_size, runner, compile)

    def __call__(self, texts: str | Sequence[str], progress: bool = False) -> list[Entity] | list[list[Entity]]:
        """The entities of one text, or of each text; `text[start:end] == entity["text"]`."""
        docs = [texts] if isinstance(texts, str) else list(texts)
        found = self._predict(docs, docs, progress)
        return found[0] if isinstance(texts, str) else found

    def words(
        self, sentences: Sequence[Sequence[str]], progress: bool = False, documents: Sequence[Any] | None = None
    ) -> list[list[Entity]]:
        """Entities of pre-split sentences: offsets index `" ".join(words)`; words [word_start, word_end) hold them.

        `documents` (one id a sentence; adjacent sentences with the same id form a document): for a model trained
        with data.context=document, each sentence is read with its document neighbours, as training read it.
        """
        sentences = [list(words) for words in sentences]
        rows, owns = self._with_context(sentences, documents)
        found = self._predict(rows, [" ".join(words) for words in sentences], progress, owns)
        for words, entities in zip(sentences, found):
            starts = word_starts(words)
            for entity in entities:
                entity["word_start"] = bisect_right(starts, entity["start"]) - 1
                entity["word_end"] = bisect_left(starts, entity["end"])
        return found

    def _with_context(
        self, sentences: list[list[str]], documents: Sequence[Any] | None
    ) -> tuple[list[list[str]], list[range]]:
        """The words each sentence is read with, and where its own words are among them (`encode_batch`'s choice:
        the nearest neighbouring words within context_tokens a side and the row, none for a sentence that needs
        windows)."""
        owns = [range(len(words)) for words in sentences]
        if documents is None or not self.context_tokens or not sentences:
            return sentences, owns
        if len(documents) != len(sentences):
            raise ConfigError(f"documents: {len(documents)} ids for {len(sentences)} sentences; give one a sentence")
        room = self.max_length - self.tokenizer.num_special_tokens_to_add()
        rows = []
        for i, (left, right) in enumerate(neighbour_words(sentences, documents, self.context_tokens)):
            # encode_batch's own word pieces (at least one a word, at most the row), so the same context is kept
            pieces = word_pieces(self.tokenizer, [left, sentences[i], right], room)
            left_n, own_n, right_n = ([len(p) for p in words] for words in pieces)
            kept = fit_context(left_n, right_n, self.context_tokens, room - sum(own_n)) if sum(own_n) <= room else (0, 0)
            rows.append(left[len(left) - kept[0] :] + sentences[i] + right[: kept[1]])
            owns[i] = range(kept[0], kept[0] + len(sentences[i]))
        return rows, owns

    def _predict(
        self, inputs: list[str] | list[list[str]], texts: list[str], progress: bool, owns: list[range] | None = None
    ) -> list[list[Entity]]:
        # in length order, so that a batch pads its rows to similar lengths; the results go back in input order
        size = [sum(map(len, x)) + len(x) if isinstance(x, list) else len(x) for x in inputs]  # characters
        order = sorted(range(len(inputs)), key=size.__getitem__)
        found: list[list[Entity]] = [[] for _ in inputs]
        with tqdm(total=len(inputs), unit="doc", disable=not progress or not inputs) as bar:
            for first in range(0, len(inputs), self.batch_size):
                batch = order[first : first + self.batch_size]
                own = [owns[i] for i in batch] if owns is not None else None
                results = self._predict_batch([inputs[i] for i in batch], [texts[i] for i in batch], own)
                for i, entities in zip(batch, results):
                    found[i] = entities
                bar.update(len(batch))
        return found

    def _predict_batch(
        self, inputs: list[str] | list[list[str]], texts: list[str], owns: list[range] | None
    ) -> list[list[Entity]]:
        """`owns`: with pre-split words, which words of each input are the sentence's own (the rest is context)."""
        split = isinstance(inputs[0], list)
        encoding = self.tokenizer(
            inputs, is_split_into_words=split, truncation=True, max_length=self.max_length, stride=self.overlap,
            return_overflowing_tokens=True, return_offsets_mapping=True, return_special_tokens_mask=True,
        )  # fmt: skip
        scores = self._scores(encoding)
        windows: list[list[int]] = [[] for _ in inputs]
        for window, doc in enumerate(encoding["overflow_to_sample_mapping"]):
            windows[doc].append(window)
        entities = []
        for doc, text in enumerate(texts):
            # with pre-split words the tokenizer gives offsets inside each word: shift them into the joined text
            own = owns[doc] if owns is not None else range(len(inputs[doc]))
            shifts = word_starts(inputs[doc][own.start : own.stop]) if split else None
            entities.append(self._entities(text, encoding, windows[doc], scores, shifts, own.start if split else None))
        return entities

    def _scores(self, encoding: BatchEncoding) -> list[np.ndarray]:
        """Label probabilities of every token of every window, (tokens, labels) each."""
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoding]
        rows = [{k: encoding[k][i] for k in keys} for i in range(len(encoding["input_ids"]))]
        scores = []
        for first in range(0, len(rows), self.batch_size):
            chunk = rows[first : first + self.batch_size]
            # a compiled graph takes a batch of one for a shape of its own (a second compile): it reads the row twice
            twice = self.compiled and len(chunk) == 1
            # right padding whatever the tokenizer's default: the slice below keeps each row's first tokens
            batch = self.tokenizer.pad(chunk * 2 if twice else chunk, padding_side="right", return_tensors="pt")
            batch = batch.to(self.model.device)
            with torch.inference_mode(), self._frozen():
                probs = self.runner(**batch).logits.float().softmax(-1).cpu().numpy()
            scores += [p[: len(row["input_ids"])] for p, row in zip(probs, chunk)]
        return scores

    def _frozen(self) -> contextlib.AbstractContextManager:
        """With compile: frozen weights, which inductor folds into the graph and packs for its matrix products (a
        global that inductor reads when a graph compiles, so set for these calls only)."""
        if not self.compiled:
            return contextlib.nullcontext()
        import torch._inductor.config

        return torch._inductor.config.patch(freezing=True)

    def _entities(
        self,
        text: str,
        encoding: BatchEncoding,
        windows: list[int],
        scores: list[np.ndarray],
        shifts: list[int] | None,
        first_word: int | None,
    ) -> list[Entity]:
        """Merge a document's windows into one token sequence, then aggregate it once, as the pipeline would.
        With pre-split words, the words from `first_word` on (`len(shifts)` of them) are the text; those around
        them were read as context only."""
        word_ids = [encoding.word_ids(w) for w in windows]
        if shifts is not None:  # the text's own words shift to 0, ...; context words leave the sequence
            word_ids = [[None if i is None else i - first_word for i in ids] for ids in word_ids]
        own = range(len(shifts)) if shifts is not None else None
        contents = [
            [i for i, special in enumerate(encoding["special_tokens_mask"][w]) if not special
             and (own is None or word_ids[n][i] in own)]
            for n, w in enumerate(windows)
        ]  # fmt: skip
        ids, offsets, rows = [], [], []
        for source, index in token_sources([len(content) for content in contents], self.overlap):
            window, i = windows[source], contents[source][index]
            begin, end = encoding["offset_mapping"][window][i]
            shift = shifts[word_ids[source][i]] if shifts is not None else 0
            ids.append(encoding["input_ids"][window][i])
            offsets.append((begin + shift, end + shift))
            rows.append(scores[window][i])
        if not ids:
            return []
        no_special = np.zeros(len(ids))  # the windows' special tokens were left out above
        pre = self.grouper.gather_pre_entities(
            text, np.array(ids), np.stack(rows), list(offsets), no_special, self.strategy
        )
        return [
            {"text": text[g["start"] : g["end"]], "type": g["entity_group"], "start": int(g["start"]),
             "end": int(g["end"]), "score": float(g["score"])}
            for g in self.grouper.aggregate(pre, self.strategy)
            if g["entity_group"] != "O"  # the pipeline's default ignore_labels
        ]  # fmt: skip


USAGE = (
    'usage: python -m lit_ner.predict model=<folder> (text="..." | input=<file>) [output=<file>] '
    "[aggregation=simple|first|average|max] [batch_size=32] [device=cpu|cuda] [max_length=N] [overlap=N] "
    "[backend=torch|onnx] [quantize=int8] [compile=true|false] [format=conll]"
)
OPTIONS = {"model", "text", "input", "output", "aggregation", "batch_size", "device", "max_length", "overlap",
           "backend", "quantize", "compile", "format"}  # fmt: skip
RENAMED = {"stride": "overlap"}  # options renamed since lit_ner 0.1 (old -> new)


def parse_args(argv: Sequence[str]) -> dict[str, str]:
    """`key=value` arguments, checked against OPTIONS."""
    for arg in argv:
        old = arg.partition("=")[0]
        if old in RENAMED:
            raise ConfigError(f"unknown argument {arg!r}: {old}= is now called {RENAMED[old]}= (the tokens "
                              f"consecutive windows share)\n{USAGE}")  # fmt: skip
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


def read_conll_file(path: Path) -> tuple[list[str], list[list[int]], list[int]]:
    """A CoNLL column file kept line for line: (its lines, the line numbers of each sentence's words, each
    sentence's document). The first column is the word; blank lines end sentences; -DOCSTART- lines start documents."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"input={path}: cannot read it as UTF-8 text ({err})") from None
    sentences: list[list[int]] = [[]]
    documents = [0]
    for number, line in enumerate(lines):
        first = line.split(maxsplit=1)[0] if line.strip() else ""
        if first == "-DOCSTART-" or not first:
            if sentences[-1]:
                sentences.append([])
                documents.append(documents[-1])
            if first:
                documents[-1] += 1
            continue
        sentences[-1].append(number)
    if not sentences[-1]:
        sentences.pop()
        documents.pop()
    return lines, sentences, documents


def tag_conll(predictor: "NerPredictor", path: Path, progress: bool) -> str:
    """The file's lines with one more column: the predicted IOB2 tag of each word (the file's own separator, tab or
    space); -DOCSTART- and blank lines as they were. A model trained with document context reads each sentence with
    the sentences of its -DOCSTART- document."""
    lines, sentences, documents = read_conll_file(path)
    words = [[lines[n].split()[0] for n in numbers] for numbers in sentences]
    tags = {n: "O" for numbers in sentences for n in numbers}
    for numbers, entities in zip(sentences, predictor.words(words, progress=progress, documents=documents)):
        for entity in entities:
            for i in range(entity["word_start"], entity["word_end"]):
                tags[numbers[i]] = f"{'B' if i == entity['word_start'] else 'I'}-{entity['type']}"
    out = [line + ("\t" if "\t" in line else " ") + tags[n] if n in tags else line for n, line in enumerate(lines)]
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
            args["model"], args.get("aggregation", "simple"), whole_number(args, "max_length"),
            whole_number(args, "overlap", minimum=0), whole_number(args, "batch_size") or 32, args.get("device"),
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
