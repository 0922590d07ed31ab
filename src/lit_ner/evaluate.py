"""`python -m lit_ner.evaluate model=<export | .ckpt | encoder> data=NAME split=test`: the model read as predict and
the service read it (lit_ner.inference); per-type scores of exact spans (checked against seqeval where entities are
flat; nested entities scored apart too), SemEval-2013 schemes, kinds of error, bootstrap intervals, the confusion of
types, calibration; report.md/.json/.html, errors.jsonl and predictions.jsonl."""

import json
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig
from torch.utils.tensorboard import SummaryWriter

from lit_ner import files
from lit_ner.analysis import bootstrap_f1, confusion, error_kinds, error_records, semeval_scores, worst_sentences
from lit_ner.app import CONFIG_PATH, build
from lit_ner.cli import CallableModule, check_config, compose_run, hydra_refusals_reported, model_argument
from lit_ner.calibration import calibration_report
from lit_ner.data.formats import gold_entities
from lit_ner.data.reading import Reading, default_max_length
from lit_ner.data.schemes import entity_types
from lit_ner.errors import ConfigError, reported
from lit_ner.heads import Decoded
from lit_ner.inference import Tagger, checked_thresholds, parse_thresholds
from lit_ner.models import inspect_model, open_model
from lit_ner.report_html import render_report
from lit_ner.reports import NONE, markdown_report, plot_confusion
from lit_ner.scores import entity_scores

log = logging.getLogger("lit_ner")
# the check below fails only on a defect in lit_ner, never on bad input
BUG = "a lit_ner defect, not your input: please report it with this message"


def write_conll(path: Path, tokens: list[list[str]], gold: list[list[str]], pred: list[list[str]]) -> None:
    """conlleval's input: one `word gold predicted` line per word, a blank line after each sentence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.writing(path) as f:
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
    info = inspect_model(name)
    backend = {"backend": cfg.get("backend", "torch"), "quantize": cfg.get("quantize")}
    # a trained model opens now (a model that cannot be read stops before the data is); an encoder once the data has
    # given its labels (its head is new and random: the zero-shot baseline fine-tuning must beat)
    opened = None if info.kind == "encoder" and backend["backend"] == "torch" else open_model(info, **backend)
    reading = read_as_trained(cfg, name, info.reading, info.limit)
    export = info.kind == "export" and (Path(name).expanduser() / "config.json").is_file()
    if cfg.get("save_thresholds") and not (export and cfg.get("calibrate", True)):
        raise ConfigError(  # before the evaluation, not after it
            "save_thresholds=true stores what calibration finds in an exported folder: give model=<run>/model and "
            f"calibrate=true (model={name}, calibrate={cfg.get('calibrate', True)})"
        )
    # the model's tokenizer, and its label order: a tag outside its labels stops with where it occurs
    datamodule = build(cfg.data, tokenizer_name_or_path=info.tokenizer, labels=info.labels or cfg.data.get("labels"),
                       **reading.record(), _convert_="all")  # fmt: skip
    datamodule.prepare_data()
    datamodule.setup("test")
    if cfg.split not in datamodule.datasets:
        raise ConfigError(f"split={cfg.split}: the data has the splits {', '.join(datamodule.datasets)}")
    opened = opened or open_model(info, labels=datamodule.labels)
    opened.read_as(reading.record(), "data.max_length")  # a max_length the model cannot read stops here

    labels = datamodule.labels
    words = datamodule.cached_words()[cfg.split]
    tokens, gold, gold_tags = words["tokens"], gold_entities(words), words["tags"]
    # the path NerPredictor, lit_ner.predict and the service read the model by: what is scored here is what they return
    calibration = opened.calibration  # an export's temperature and stored thresholds
    thresholds = calibration.thresholds if cfg.get("min_score") is None else parse_thresholds(cfg.min_score)
    tagger = Tagger(opened.runner, opened.tokenizer, opened.head, reading, datamodule.eval_batch_size,
                    temperature=calibration.temperature, max_tokens=datamodule.hparams.max_tokens)  # fmt: skip
    # every entity (calibration measures them all); then, as predict and the service do, those under min_score go
    every = tagger.read(tokens, documents_of(words), progress=True)
    kept = checked_thresholds(thresholds, labels)
    decoded = [d.kept(kept) for d in every]
    pred, pred_tags = [[e[:3] for e in d.entities] for d in decoded], [d.tags for d in decoded]
    unscored = [s for s in range(len(gold)) if len(pred_tags[s]) != len(gold_tags[s])]
    if unscored:
        raise RuntimeError(f"sentences {unscored[:5]} did not get one prediction per word ({BUG})")
    scores, checked = entity_scores(labels, gold, pred, gold_tags, pred_tags, tagger=opened.head.name != "span")

    types = entity_types(labels)
    counts, overlaps = confusion(gold, pred, types, NONE)
    report = {
        "model": name,
        "head": opened.head.name,
        "tokenizer": info.tokenizer,
        "split": cfg.split,
        "zero_shot": info.kind == "encoder",
        "sentences": len(gold),
        "words": sum(map(len, gold_tags)),
        "windowed_sentences": datamodule.meta["splits"][cfg.split]["split_sentences"],  # longer than max_length
        "scores": scores,
        "checked": checked,
        "confusion": {"labels": [*types, NONE], "counts": counts, "overlap": overlaps},
        "worst": worst_sentences(tokens, gold, pred, cfg.worst),
        "files": {
            "markdown": str(out / "report.md"),
            "json": str(out / "report.json"),
            "confusion": str(out / "confusion.png"),
            "tensorboard": str(out / "tensorboard"),
            "predictions": str(out / "predictions.jsonl"),
        },
    }
    if cfg.conll:
        write_conll(Path(cfg.conll), tokens, gold_tags, pred_tags)
        report["files"]["conll"] = str(cfg.conll)
    # beyond exact match: SemEval-2013's four schemes, the kinds of error, confidence intervals, every wrong sentence
    report["semeval"] = semeval_scores(gold, pred)
    report["error_kinds"] = error_kinds(gold, pred)
    report["bootstrap"] = bootstrap_f1(gold, pred, seed=cfg.seed)
    records = error_records(tokens, gold, pred, [[e.score for e in d.entities] for d in decoded])
    write_jsonl(out / "errors.jsonl", records)
    write_jsonl(out / "predictions.jsonl", predictions(tokens, decoded))
    report["files"] |= {"errors": str(out / "errors.jsonl"), "html": str(out / "report.html")}
    if cfg.get("calibrate", True) and "validation" in datamodule.datasets:
        report["calibration"] = calibrate(cfg, tagger, datamodule, (gold, every), out, name)
        report["files"] |= {k: str(out / f) for k, f in CALIBRATION_FILES.items()}

    markdown = markdown_report(report)
    title = f"{'/'.join(Path(name).parts[-2:])}: {cfg.split}, {len(gold)} sentences"
    figure = plot_confusion(counts, overlaps, [*types, NONE], title)
    save_figure(figure, Path(report["files"]["confusion"]))
    with SummaryWriter(report["files"]["tensorboard"]) as writer:
        writer.add_figure(f"{cfg.split}/confusion_matrix", figure)
        writer.add_text(f"{cfg.split}/report", markdown)
    files.write_text(out / "report.md", markdown)
    files.write_text(out / "report.json", json.dumps(report, indent=1))
    files.write_text(out / "report.html", render_report(report, records))
    print(markdown)
    return report


def predictions(tokens: list[list[str]], decoded: list[Decoded]) -> list[dict[str, Any]]:
    """predictions.jsonl: each sentence's words and the entities scored (word offsets, end exclusive), in order."""
    return [{"sentence": n, "words": list(words), "entities": [e._asdict() for e in d.entities]}
            for n, (words, d) in enumerate(zip(tokens, decoded))]  # fmt: skip


def read_as_trained(cfg: DictConfig, name: str, recorded: dict[str, Any], limit: int | None) -> Reading:
    """How this evaluation reads sentences: the data keys given (not null), the model's recorded reading for the
    rest (an export's or a checkpoint's; said on stderr), the defaults beyond that (max_length within the model's
    `limit` positions). Reading otherwise than the model was trained is allowed, and warned about for the context."""
    given = Reading.given(cfg.data)
    if "max_length" not in given and "max_length" not in recorded and limit:
        given["max_length"] = default_max_length(limit)
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


def calibrate(cfg: DictConfig, tagger: Tagger, datamodule: Any, evaluated: tuple, out: Path, name: str) -> dict:
    """The calibration section: a temperature fitted on the validation split, the entity ECE on the evaluated split
    before and after it, the best threshold per type on validation (`save_thresholds=true` stores them, with the
    temperature, in the export for predict and the service); the figures and curves as files."""
    validation = datamodule.cached_words()["validation"]
    read = evaluated[1] if cfg.split == "validation" else tagger.read(validation["tokens"], documents_of(validation))
    report, diagram, curves = calibration_report((gold_entities(validation), read), evaluated, tagger.head.types)
    save_figure(diagram, out / CALIBRATION_FILES["reliability"])
    save_figure(curves, out / CALIBRATION_FILES["pr_curves"])
    files.write_text(out / CALIBRATION_FILES["pr_curves_json"], json.dumps(report.pop("pr_curves")))
    report["fitted_on"] = "validation" + (" (the evaluated split itself)" if cfg.split == "validation" else "")
    if cfg.get("save_thresholds"):
        report["saved_to"] = str(save_calibration(name, report["temperature"], report["thresholds"]))
    return report


def save_calibration(name: str, temperature: float, thresholds: dict[str, dict[str, float]]) -> Path:
    """Store the temperature and the thresholds in an export's config.json (`lit_ner_calibration`), where predict,
    the service and evaluate read them; written whole (lit_ner.files), so a failure leaves the old file as it was."""
    config = Path(name).expanduser() / "config.json"
    data = json.loads(config.read_text(encoding="utf-8"))
    data["lit_ner_calibration"] = {"temperature": temperature,
                                   "thresholds": {t: best["threshold"] for t, best in thresholds.items()}}  # fmt: skip
    files.write_text(config, json.dumps(data, indent=2) + "\n")
    return config


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    with files.writing(path) as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def save_figure(figure: Any, path: Path) -> None:
    """A PNG written whole (lit_ner.files)."""
    with files.writing(path, "wb") as f:
        figure.savefig(f, format="png", dpi=120)


def run(*overrides: str) -> dict[str, Any]:
    """`lit_ner.evaluate("model=<run>/model", "data=local", "data.path=my_corpus/")`: what `python -m lit_ner.evaluate
    <overrides>` does, in this process, checked the same way (a bad setting raises ConfigError), writing to the same
    folder (outputs/evaluate/<date_time>, or output_dir=...). Returns what report.json holds:
    `report["scores"]["default"]["micro avg"]["f1"]` is the entity F1 (docs/analysis.md says what each part means)."""
    return evaluate(compose_run("evaluate", [model_argument(o, any_name=True) for o in overrides], "output_dir"))


@hydra.main(config_path=CONFIG_PATH, config_name="evaluate", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    with reported():
        check_config(cfg)
        evaluate(cfg)


def main() -> None:
    """`python -m lit_ner.evaluate` and `lit-ner-evaluate`; `model=<path or Hub name>` names the model scored."""
    sys.argv = [sys.argv[0], *(model_argument(arg, any_name=True) for arg in sys.argv[1:])]
    with hydra_refusals_reported("evaluate"):
        hydra_main()


sys.modules[__name__].__class__ = CallableModule  # lit_ner.evaluate(...) is run(...)

if __name__ == "__main__":
    main()
