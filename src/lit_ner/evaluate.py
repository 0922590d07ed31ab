"""`python -m lit_ner.evaluate model=<export | .ckpt | encoder> data=NAME split=test`: the model read as predict and
the service read it (lit_ner.inference); per-type scores checked against seqeval, SemEval-2013 schemes, kinds of
error, bootstrap intervals, the confusion of types, calibration; report.md/.json/.html and errors.jsonl."""

import json
import logging
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig
from transformers import AutoConfig
from seqeval.metrics import classification_report
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import IOB2, IOBES
from torch.utils.tensorboard import SummaryWriter

from lit_ner.analysis import bootstrap_f1, error_kinds, error_records, semeval_scores
from lit_ner.app import CONFIG_PATH, build, shipped_config
from lit_ner.data.encode import position_limit
from lit_ner.calibration import calibration_report
from lit_ner.data.align import IGNORE
from lit_ner.errors import ConfigError, reported
from lit_ner.inference import Calibration, Reading, TorchRunner, WordTagger, checked_thresholds, parse_thresholds
from lit_ner.metrics import E, EntityMetric, S
from lit_ner.models import load_for_evaluation
from lit_ner.module import load_token_classifier
from lit_ner.report_html import render_report
from lit_ner.reports import NONE, markdown_report, plot_confusion

log = logging.getLogger("lit_ner")

Tags = list[list[str]]  # one list of word tags (or words) per sentence
# the two checks below fail only on a defect in lit_ner, never on bad input
BUG = "a lit_ner defect, not your input: please report it with this message"


def score_words(metrics: list[EntityMetric], gold: list[list[int]], pred: list[list[int]], chunk: int = 512) -> None:
    """Feed word label ids, a sentence a row, to the metrics (the words' own tags: no sub-tokens, no windows)."""
    for first in range(0, len(gold), chunk):
        rows = range(first, min(first + chunk, len(gold)))
        width = max([len(gold[i]) for i in rows] + [1])
        target = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        preds = torch.zeros((len(rows), width), dtype=torch.long)
        for n, i in enumerate(rows):
            target[n, : len(gold[i])] = torch.tensor(gold[i], dtype=torch.long)
            preds[n, : len(pred[i])] = torch.tensor(pred[i], dtype=torch.long)
        for metric in metrics:
            metric.update(preds, target)


def checked_scores(metric: EntityMetric, gold: Tags, pred: Tags) -> dict[str, dict[str, float]]:
    """{type: precision, recall, f1, support} and "micro avg" from lit_ner's metric, after checking that
    seqeval's classification_report on the same word tags gives the same numbers."""
    scores = {k: float(v) for k, v in metric.compute().items()}
    table = {
        t: {m: scores[f"{m}_{t}"] for m in ("precision", "recall", "f1")} | {"support": int(scores[f"support_{t}"])}
        for t in metric.entity_types
    }
    support = sum(row["support"] for row in table.values())
    table["micro avg"] = {m: scores[m] for m in ("precision", "recall", "f1")} | {"support": support}
    if metric.mode == "strict":
        # from the labels, by EntityMetric's own rule (any E- or S- label), not from the gold: gold with only
        # B/I/O tags, or no entity at all, may still meet a model's IOBES predictions
        scheme = IOBES if bool((metric.prefix_of_label & (E | S)).any()) else IOB2
        theirs = classification_report(gold, pred, output_dict=True, zero_division=0, mode="strict", scheme=scheme)
    else:
        theirs = classification_report(gold, pred, output_dict=True, zero_division=0)
    for name, ours in table.items():
        # seqeval lists only the types that occur; a type that never does scores 0 everywhere
        other = theirs.get(name, {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
        other = {"f1": other["f1-score"]} | {k: other[k] for k in ("precision", "recall", "support")}
        if any(ours[k] != other[k] for k in ours):  # exactly: our metric reproduces seqeval to the last bit
            raise RuntimeError(f"{metric.mode} scores of {name} differ: lit_ner {ours}, seqeval {other} ({BUG})")
    return table


def confusion(gold: Tags, pred: Tags, types: list[str]) -> tuple[list[list[int]], list[list[int]]]:
    """Counts of (gold type, predicted type) entity pairs, with NONE for missed and spurious entities; and
    the counts of those pairs matched by overlap only (a wrong boundary).

    In each sentence, a gold and a predicted entity with the same span pair up first. Then each gold entity
    left, in order, pairs with the unpaired prediction sharing the most words with it (the first on a tie).
    A gold entity still unpaired is missed (gold type, NONE); a prediction still unpaired is spurious (NONE, type).
    """
    index = {t: i for i, t in enumerate([*types, NONE])}
    counts = [[0] * len(index) for _ in index]
    overlaps = [[0] * len(index) for _ in index]
    for gold_tags, pred_tags in zip(gold, pred):
        golds, preds = get_entities(gold_tags), get_entities(pred_tags)  # (type, first word, last word)
        predicted_at = {(s, e): t for t, s, e in preds}
        gold_spans = {(s, e) for _, s, e in golds}
        left = [(t, s, e) for t, s, e in preds if (s, e) not in gold_spans]
        for g_type, g_start, g_end in golds:
            if (g_start, g_end) in predicted_at:
                counts[index[g_type]][index[predicted_at[(g_start, g_end)]]] += 1
                continue
            shared = [min(g_end, e) - max(g_start, s) + 1 for _, s, e in left]
            best = max(range(len(left)), key=shared.__getitem__, default=None)
            if best is None or shared[best] <= 0:
                counts[index[g_type]][index[NONE]] += 1
                continue
            p_type = left.pop(best)[0]
            counts[index[g_type]][index[p_type]] += 1
            overlaps[index[g_type]][index[p_type]] += 1
        for p_type, _, _ in left:
            counts[index[NONE]][index[p_type]] += 1
    return counts, overlaps


def worst_sentences(tokens: Tags, gold: Tags, pred: Tags, n: int) -> list[dict[str, Any]]:
    """The n sentences with the most entity errors (missed + spurious in exact-span terms), entities bracketed."""

    def marked(words: list[str], tags: list[str]) -> str:
        out = list(words)
        for type_, start, end in get_entities(tags):
            out[start] = "[" + out[start]
            out[end] += "]" + type_  # after the line above: a one-word entity gets both marks
        return " ".join(out)

    errors = [len(set(get_entities(g)) ^ set(get_entities(p))) for g, p in zip(gold, pred)]
    order = sorted((i for i, e in enumerate(errors) if e), key=lambda i: (-errors[i], i))[:n]
    return [
        {
            "sentence": i,
            "errors": errors[i],
            "gold": marked(tokens[i], gold[i]),
            "predicted": marked(tokens[i], pred[i]),
        }
        for i in order
    ]


def write_conll(path: Path, tokens: Tags, gold: Tags, pred: Tags) -> None:
    """conlleval's input: one `word gold predicted` line per word, a blank line after each sentence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for sentence_words, sentence_gold, sentence_pred in zip(tokens, gold, pred):
            for word, g, p in zip(sentence_words, sentence_gold, sentence_pred):
                f.write(f"{'_'.join(word.split()) or '_'} {g} {p}\n")  # a space inside a word would add a column
            f.write("\n")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """The whole evaluation, callable in-process (notebooks and tests compose `evaluate.yaml` and call this)."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed)  # the random head of a plain encoder is the same in every run
    name = str(cfg.model.model_name_or_path)
    model, model_labels, tokenizer, recorded = load_for_evaluation(name)
    runner = None
    if cfg.get("backend", "torch") != "torch" or cfg.get("quantize"):
        if cfg.backend != "onnx" or model is None or Path(name).suffix == ".ckpt":
            raise ConfigError(
                f"backend={cfg.backend}, quantize={cfg.quantize}: backend=onnx (quantize=int8 with it) evaluates an "
                "exported folder's ONNX model (python -m lit_ner.export_onnx model=<run>/model)"
            )
        from lit_ner.export_onnx import OnnxTokenClassifier

        runner = OnnxTokenClassifier(Path(name), cfg.quantize)
    limit = position_limit(model.config if model is not None else AutoConfig.from_pretrained(tokenizer))
    reading = read_as_trained(cfg, name, recorded, limit)
    export = Path(name).suffix != ".ckpt" and (Path(name).expanduser() / "config.json").is_file()
    if cfg.get("save_thresholds") and not (export and cfg.get("calibrate", True)):
        raise ConfigError(  # before the evaluation, not after it
            "save_thresholds=true stores what calibration finds in an exported folder: give model=<run>/model and "
            f"calibrate=true (model={name}, calibrate={cfg.get('calibrate', True)})"
        )
    # the model's tokenizer, and its label order: a tag outside its labels stops with where it occurs
    labels = model_labels or cfg.data.get("labels")
    datamodule = build(cfg.data, tokenizer_name_or_path=tokenizer, labels=labels, **reading.record(), _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("test")
    if cfg.split not in datamodule.datasets:
        raise ConfigError(f"split={cfg.split}: the data has the splits {', '.join(datamodule.datasets)}")
    zero_shot = model is None
    if zero_shot:  # a plain encoder: a random head for the data's labels, the baseline fine-tuning must beat
        model = load_token_classifier(tokenizer, datamodule.labels)
    if runner is None:
        runner = TorchRunner(model.to("cuda" if torch.cuda.is_available() else "cpu"))

    labels = datamodule.labels
    words = datamodule.cached_words()[cfg.split]
    tokens, gold = words["tokens"], words["tags"]
    # the path NerPredictor, lit_ner.predict and the service read the model by: what is scored here is what they return
    hp = datamodule.hparams
    calibration = Calibration.of(getattr(model, "config", None))  # an export's temperature and stored thresholds
    thresholds = calibration.thresholds if cfg.get("min_score") is None else parse_thresholds(cfg.min_score)
    # every entity (calibration measures them all); then, as predict and the service do, those under min_score go
    tagger = WordTagger(runner, datamodule.tokenizer, labels, reading, datamodule.eval_batch_size,
                        temperature=calibration.temperature, max_tokens=hp.max_tokens)  # fmt: skip
    every = tagger(tokens, documents_of(words), progress=True)
    kept = checked_thresholds(thresholds, labels)
    tagged = [t.kept(kept, labels.index("O")) for t in every]
    pred = [t.tags for t in tagged]
    label_id = {label: i for i, label in enumerate(labels)}
    metrics = [EntityMetric(labels), EntityMetric(labels, mode="strict")]
    score_words(metrics, [[label_id[t] for t in tags] for tags in gold], [[label_id[t] for t in tags] for tags in pred])
    unscored = [s for s in range(len(gold)) if len(pred[s]) != len(gold[s])]
    if unscored:
        raise RuntimeError(f"sentences {unscored[:5]} did not get one prediction per word ({BUG})")

    types = metrics[0].entity_types
    counts, overlaps = confusion(gold, pred, types)
    report = {
        "model": name,
        "tokenizer": tokenizer,
        "split": cfg.split,
        "zero_shot": zero_shot,
        "sentences": len(gold),
        "words": sum(map(len, gold)),
        "windowed_sentences": datamodule.meta["splits"][cfg.split]["split_sentences"],  # longer than max_length
        "scores": {metric.mode: checked_scores(metric, gold, pred) for metric in metrics},
        "checked": f"equal to seqeval {version('seqeval')} classification_report on the same tags",
        "confusion": {"labels": [*types, NONE], "counts": counts, "overlap": overlaps},
        "worst": worst_sentences(tokens, gold, pred, cfg.worst),
        "files": {
            "markdown": str(out / "report.md"),
            "json": str(out / "report.json"),
            "confusion": str(out / "confusion.png"),
            "tensorboard": str(out / "tensorboard"),
        },
    }
    if cfg.conll:
        write_conll(Path(cfg.conll), tokens, gold, pred)
        report["files"]["conll"] = str(cfg.conll)
    # beyond exact match: SemEval-2013's four schemes, the kinds of error, confidence intervals, every wrong sentence
    report["semeval"] = semeval_scores(gold, pred)
    report["error_kinds"] = error_kinds(gold, pred)
    report["bootstrap"] = bootstrap_f1(gold, pred, seed=cfg.seed)
    records = error_records(tokens, gold, pred, [[e[3] for e in t.entities()] for t in tagged])
    write_jsonl(out / "errors.jsonl", records)
    report["files"] |= {"errors": str(out / "errors.jsonl"), "html": str(out / "report.html")}
    if cfg.get("calibrate", True) and "validation" in datamodule.datasets:
        report["calibration"] = calibrate(cfg, tagger, datamodule, (gold, every), out, name)
        report["files"] |= {k: str(out / f) for k, f in CALIBRATION_FILES.items()}

    markdown = markdown_report(report)
    title = f"{'/'.join(Path(name).parts[-2:])}: {cfg.split}, {len(gold)} sentences"
    figure = plot_confusion(counts, overlaps, [*types, NONE], title)
    figure.savefig(report["files"]["confusion"], dpi=120)
    with SummaryWriter(report["files"]["tensorboard"]) as writer:
        writer.add_figure(f"{cfg.split}/confusion_matrix", figure)
        writer.add_text(f"{cfg.split}/report", markdown)
    (out / "report.md").write_text(markdown, encoding="utf-8")
    (out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    (out / "report.html").write_text(render_report(report, records), encoding="utf-8")
    print(markdown)
    return report


def read_as_trained(cfg: DictConfig, name: str, recorded: dict[str, Any], limit: int | None) -> Reading:
    """How this evaluation reads sentences: the data keys given (not null), the model's recorded reading for the
    rest (an export's or a checkpoint's; said on stderr), the defaults beyond that (max_length within the model's
    `limit` positions). Reading otherwise than the model was trained is allowed, and warned about for the context."""
    given = {k: cfg.data[k] for k in Reading().record() if cfg.data.get(k) is not None}
    if "max_length" not in given and "max_length" not in recorded and limit:
        given["max_length"] = min(Reading.max_length, limit)
    adopted = {k: v for k, v in recorded.items() if k not in given}
    if adopted:
        shown = " ".join(f"data.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in adopted.items())
        print(f"lit_ner: reading as the model was trained ({name}): {shown}", file=sys.stderr)
    if "context" in given and given["context"] != recorded.get("context", given["context"]):
        log.warning(
            "%s was trained with data.context=%s but this evaluation reads data.context=%s: its scores will not be "
            "the trained model's; pass data.context=%s",
            name, recorded["context"], given["context"], recorded["context"],
        )  # fmt: skip
    return Reading.of(adopted | given)


CALIBRATION_FILES = {"reliability": "reliability.png", "pr_curves": "pr_curves.png", "pr_curves_json": "pr_curves.json"}


def documents_of(split: Any) -> list[int] | None:
    return split["document"] if "document" in split.column_names else None


def calibrate(cfg: DictConfig, tagger: WordTagger, datamodule: Any, evaluated: tuple, out: Path, name: str) -> dict:
    """The calibration section: a temperature fitted on the validation split, the entity ECE on the evaluated split
    before and after it, the best threshold per type on validation (`save_thresholds=true` stores them, with the
    temperature, in the export for predict and the service); the figures and curves as files."""
    validation = datamodule.cached_words()["validation"]
    tagged = evaluated[1] if cfg.split == "validation" else tagger(validation["tokens"], documents_of(validation))
    report, diagram, curves = calibration_report((validation["tags"], tagged), evaluated, tagger.labels)
    diagram.savefig(out / CALIBRATION_FILES["reliability"], dpi=120)
    curves.savefig(out / CALIBRATION_FILES["pr_curves"], dpi=120)
    (out / CALIBRATION_FILES["pr_curves_json"]).write_text(json.dumps(report.pop("pr_curves")), encoding="utf-8")
    report["fitted_on"] = "validation" + (" (the evaluated split itself)" if cfg.split == "validation" else "")
    if cfg.get("save_thresholds"):
        report["saved_to"] = str(save_calibration(name, report["temperature"], report["thresholds"]))
    return report


def save_calibration(name: str, temperature: float, thresholds: dict[str, dict[str, float]]) -> Path:
    """Store the temperature and the thresholds in an export's config.json (`lit_ner_calibration`), where predict,
    the service and evaluate read them; written beside it and renamed, so a failure leaves the old file whole."""
    config = Path(name).expanduser() / "config.json"
    data = json.loads(config.read_text(encoding="utf-8"))
    data["lit_ner_calibration"] = {"temperature": temperature,
                                   "thresholds": {t: best["threshold"] for t, best in thresholds.items()}}  # fmt: skip
    partial = config.with_name(".config.json.partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    partial.replace(config)
    return config


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def model_override(arg: str) -> str:
    """`model=<path or name>` from the command line as `model.model_name_or_path=...`: conf/model is a config
    group, so Hydra would look for conf/model/<path>.yaml. A name of one of its files (minilm) stays a group choice."""
    key, _, value = arg.partition("=")
    if key == "model" and not shipped_config("model", value):
        return f"model.model_name_or_path={value}"
    return arg


@hydra.main(config_path=CONFIG_PATH, config_name="evaluate", version_base="1.3")
def run(cfg: DictConfig) -> None:
    with reported():
        evaluate(cfg)


def main() -> None:
    """`python -m lit_ner.evaluate` and `lit-ner-evaluate`."""
    sys.argv = [sys.argv[0], *(model_override(arg) for arg in sys.argv[1:])]
    run()


if __name__ == "__main__":
    main()
