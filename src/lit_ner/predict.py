"""`python -m lit_ner.predict model=<folder> (text="..." | input=<file>)`: tag texts, JSON lines or CoNLL files
with an exported model through `NerPredictor` (lit_ner.predictor), the reading evaluate scores."""

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lit_ner.data.formats import conll_lines
from lit_ner.errors import ConfigError, DataError, key_values, reported, true_or_false
from lit_ner.inference import parse_thresholds
from lit_ner.predictor import NerPredictor, word_starts  # noqa: F401  (NerPredictor is imported from here too)

USAGE = (
    'usage: python -m lit_ner.predict model=<folder> (text="..." | input=<file>) [output=<file>] '
    "[aggregation=first|average|max] [batch_size=64] [device=cpu|cuda] [max_length=N] [window_context=N] "
    "[backend=torch|onnx] [quantize=int8] [compile=true|false] [format=conll] [min_score=0.5|PER:0.6,LOC:0.4]"
)
OPTIONS = {"model", "text", "input", "output", "aggregation", "batch_size", "device", "max_length", "window_context",
           "backend", "quantize", "compile", "format", "min_score"}  # fmt: skip


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
            parse_thresholds(args.get("min_score")),
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
