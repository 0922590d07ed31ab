"""`python -m lit_ner.predict model=<folder> (text="..." | input=<file>)`: tag texts, JSON lines or CoNLL files
with an exported model through `NerPredictor` (lit_ner.predictor), the reading evaluate scores."""

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lit_ner import files
from lit_ner.data.formats import conll_lines, conll_words, text_checked
from lit_ner.data.unlabelled import read_documents
from lit_ner.errors import ConfigError, DataError, key_values, reported, true_or_false
from lit_ner.inference import parse_thresholds
from lit_ner.models import model_name
from lit_ner.predictor import NerPredictor  # also imported from here: lit_ner.predict.NerPredictor
from lit_ner.selection import STRATEGIES

USAGE = (
    'usage: python -m lit_ner.predict model=<folder> (text="..." | input=<file>) [output=<file>] '
    "[aggregation=first|average|max] [batch_size=64] [device=cpu|cuda] [max_length=N] [window_context=N] "
    "[backend=torch|onnx] [quantize=int8] [compile=true|false] [format=conll|label-studio|doccano] "
    f"[min_score=0.5|PER:0.6,LOC:0.4] [sort={'|'.join(STRATEGIES)}] [text_field=text] [from_name=label] "
    "[to_name=text]"
)
ABOUT = """Tag texts or files with a trained model (an export: <run>/model), read as lit_ner.evaluate scores it: JSON
lines of entities with character offsets and scores, a CoNLL file with a column of predicted tags, or Label Studio /
doccano pre-annotations.

examples:
  python -m lit_ner.predict model=outputs/quickstart/<run>/model text="Alan Walker wrote it in 1940."
  python -m lit_ner.predict model=<run>/model input=docs.txt output=entities.jsonl      # one document a line
  python -m lit_ner.predict model=<run>/model input=corpus.conll output=tagged.conll    # CoNLL in, CoNLL out"""
OPTIONS = {
    "model": "an export (<run>/model), a lit_ner checkpoint, or a Hub name",
    "text": "one text to tag (or input=)",
    "input": ".txt (a document a line), .jsonl (text or tokens a line), .conll, or annotation-tool tasks",
    "output": "where the results go (standard output without it)",
    "aggregation": "a word's tag from its first sub-token (as training scores), or their mean or max",
    "batch_size": "rows a forward pass",
    "device": "cpu or cuda (cuda where there is one)",
    "max_length": "sub-tokens a row, instead of the export's",
    "window_context": "sub-tokens of context around a window, instead of the export's",
    "backend": "onnx: the export's ONNX model in ONNX Runtime (python -m lit_ner.export_onnx)",
    "quantize": "with backend=onnx: its int8 model",
    "compile": "torch.compile with frozen weights: the same entities, faster on large inputs",
    "format": "conll: CoNLL out; label-studio, doccano: tasks in, pre-annotations out (else by suffix)",
    "min_score": "drop entities scoring below, one value or per type (else the export's thresholds)",
    "sort": "label-studio or doccano tasks: uncertainty (least sure first), mnlp (least sure per word), random, "
            "or diverse (least sure, spread)",
    "text_field": "the tasks' text field (default: their one string field, else text)",
    "from_name": "the Label Studio Labels control",
    "to_name": "the Label Studio Text object",
}
TASK_FORMATS = ("label-studio", "doccano")  # annotation-tool tasks in, pre-annotations out


def parse_args(argv: Sequence[str]) -> dict[str, str]:
    """`key=value` arguments, checked against OPTIONS."""
    args = key_values(argv, OPTIONS, ("model",), USAGE, ABOUT)
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


def tag_conll(predictor: "NerPredictor", path: Path, progress: bool) -> str:
    """The file's lines with one more column: the predicted tag of each word (the file's own separator, tab or
    space), the tags lit_ner.evaluate writes; -DOCSTART- and blank lines as they were. The file is read as training
    reads CoNLL files (`conll_lines`), and a model trained with document context reads each sentence with the
    sentences of its -DOCSTART- document."""
    try:
        lines, sep, sentences, documents = conll_lines(path)
    except OSError as err:
        raise DataError(f"input={path}: cannot read the file ({err.strerror})") from None
    tags = {}
    decoded = predictor.word_tags(conll_words(lines, sep, sentences), progress=progress, documents=documents)
    for numbers, sentence in zip(sentences, decoded):
        tags.update(zip(numbers, sentence.tags))
    out = [line + (sep or " ") + tags[n] if n in tags else line for n, line in enumerate(lines)]
    return "".join(line + "\n" for line in out)


def pre_annotations(predictor: NerPredictor, tasks: list[Any], args: dict[str, str]) -> str:
    """The tasks (`read_tasks`) with the model's entities: Label Studio tasks, each with a `predictions` entry (its
    `model_version` the export's run and date, its `score` the model's confidence: lower is more worth labelling),
    or doccano JSON lines; with sort= in the order the strategy serves them (lit_ner.selection)."""
    from lit_ner.data.preannotations import doccano_records, label_studio_predictions, task_score
    from lit_ner.selection import sentence_score

    read = predictor.texts([task.text for task in tasks], progress=True)
    found = [entities for entities, _ in read]
    confidences = [decoded.confidence for _, decoded in read]
    if args["format"] == "doccano":
        records = doccano_records(tasks, found)
    else:
        names = args.get("from_name", "label"), args.get("to_name", "text")
        records = label_studio_predictions(tasks, found, model_name(args["model"]), confidences, *names)
    if args.get("sort"):
        if args["sort"] == "mnlp":
            scores = [sentence_score(decoded, "mnlp") for _, decoded in read]
        else:  # the tasks' own `score`, of the entities written (min_score applied)
            scores = [task_score(*r) for r in zip(found, confidences)]
        records = [records[i] for i in task_order(predictor, tasks, scores, args["sort"])]
    if args["format"] == "doccano":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return json.dumps(records, ensure_ascii=False, indent=1)


def task_order(predictor: NerPredictor, tasks: list[Any], scores: list[float], strategy: str) -> list[int]:
    """The order `strategy` serves the tasks in; diverse reads the tasks' embeddings with the model's own encoder."""
    from lit_ner import selection

    embeddings = None
    if strategy == "diverse":
        encoder = getattr(predictor.runner, "model", None)
        if encoder is None:
            raise ConfigError("sort=diverse reads the tasks with the model's encoder: use backend=torch")
        words = [[word for word, _, _ in predictor.split(task.text)] for task in tasks]
        embeddings = selection.embed(encoder, predictor.tokenizer, words, max_length=predictor.reading.max_length)
    return selection.task_order(strategy, scores, embeddings, seed=0)


def write_text(text: str, output: str | None) -> None:
    """To standard output, or to a file written whole (lit_ner.files): an error leaves the old file as it was."""
    if output is None:
        sys.stdout.write(text)
        return
    try:
        files.write_text(Path(output), text)
    except OSError as err:
        raise ConfigError(f"output={output}: cannot write it ({err.strerror})") from None


def write_jsonl(records: list[dict[str, Any]], output: str | None) -> None:
    """One JSON object a line."""
    write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), output)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m lit_ner.predict` and `lit-ner-predict`."""
    with reported():
        args = parse_args(sys.argv[1:] if argv is None else argv)
        if args.get("format", "conll") not in ("conll", *TASK_FORMATS):
            raise ConfigError(f"format={args['format']}: conll, label-studio or doccano (others go by the suffix)")
        if args.get("format") in TASK_FORMATS and "input" not in args:
            raise ConfigError(f"format={args['format']} reads tasks from a file: give input=<tasks.json>")
        if "sort" in args and (args["sort"] not in STRATEGIES or args.get("format") not in TASK_FORMATS):
            sorts = "|".join(STRATEGIES)
            raise ConfigError(f"sort={args['sort']}: sort={sorts} orders format=label-studio or doccano tasks")
        conll = "input" in args and (args.get("format") == "conll" or Path(args["input"]).suffix == ".conll")
        annotating = args.get("format") in TASK_FORMATS
        # the input is read before the model is: bad input stops before any work
        records = [text_checked({"text": args["text"]}, "text=")] if "text" in args else []
        if annotating:
            from lit_ner.data.preannotations import read_tasks

            tasks = read_tasks(Path(args["input"]), args.get("text_field"))
        elif not (conll or records):
            records = read_documents(Path(args["input"]))
        predictor = NerPredictor.from_pretrained(
            args["model"], args.get("aggregation", "first"), whole_number(args, "max_length"),
            whole_number(args, "window_context", minimum=0), whole_number(args, "batch_size") or 64, args.get("device"),
            args.get("backend", "torch"), args.get("quantize"), bool(true_or_false(args, "compile")),
            parse_thresholds(args.get("min_score")),
        )  # fmt: skip
        progress = "input" in args
        if annotating:  # tasks of an annotation tool, written back with the predictions
            write_text(pre_annotations(predictor, tasks, args), args.get("output"))
            return
        if conll:  # CoNLL in, CoNLL out: the same columns plus the predicted tag
            write_text(tag_conll(predictor, Path(args["input"]), progress), args.get("output"))
            return
        by_text = [r for r in records if "tokens" not in r]
        by_words = [r for r in records if "tokens" in r]
        for record, entities in zip(by_text, predictor([r["text"] for r in by_text], progress=progress)):
            record["entities"] = entities
        # adjacent records with the same "document" are one document (read together where the model was trained so)
        documents = [r["document"] if r.get("document") is not None else object() for r in by_words]
        found = predictor.words([r["tokens"] for r in by_words], progress=progress, documents=documents)
        for record, entities in zip(by_words, found):
            record["entities"] = entities
        write_jsonl(records, args.get("output"))


if __name__ == "__main__":
    main()
