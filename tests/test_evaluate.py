"""lit_ner.evaluate on the tiny model: scores equal to seqeval, the confusion matrix, CoNLL output, the baselines."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate
from PIL import Image
from seqeval.metrics import classification_report
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import IOB2

from lit_ner.analysis import confusion, worst_sentences
from lit_ner.data.reading import Reading
from lit_ner.data.schemes import entity_spans
from lit_ner.errors import ConfigError
from lit_ner.cli import model_argument
from lit_ner.evaluate import evaluate
from lit_ner.models import inspect_model
from lit_ner.app import compose_config
from lit_ner.scores import entity_scores
from lit_ner.train import train

SIZE = 120  # sentences of the built-in corpus: the test split is its last 10%


def eval_cfg(model: Path | str, output_dir: Path, cache: Path, *overrides: str):
    return compose_config(
        "evaluate",
        [
            f"model.model_name_or_path={model}",
            f"output_dir={output_dir}",
            f"data.cache_dir={cache}",
            f"data.synthetic_size={SIZE}",  # and seed 42: the corpus the model was trained on
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, make_cfg) -> Path:
    root = tmp_path_factory.mktemp("evaluate")
    train(make_cfg(root / "run", tiny_model, root / "cache", "model.lr=1e-3", size=SIZE))
    return root / "run"


@pytest.fixture(scope="module", params=["export", "encoder"])
def evaluated(request: pytest.FixtureRequest, run: Path, tiny_model: Path) -> tuple[dict, Path]:
    """The trained model's export, and the untrained encoder (a random head: the zero-shot baseline)."""
    model = run / "model" if request.param == "export" else tiny_model
    out = run.parent / f"eval_{request.param}"
    report = evaluate(eval_cfg(model, out, run.parent / "cache", f"conll={out / 'test.conll'}", "worst=5"))
    return report, out


def read_conll(path: Path) -> list[list[list[str]]]:
    sentences: list[list[list[str]]] = [[]]
    for line in path.read_text().splitlines():
        if line:
            sentences[-1].append(line.split(" "))
        else:
            sentences.append([])
    assert sentences.pop() == [], "the file ends with a blank line"
    return sentences


def test_conll_output_has_every_word_with_its_gold_tag(evaluated, run: Path, tiny_model: Path) -> None:
    report, out = evaluated
    data = eval_cfg(run / "model", out, run.parent / "cache").data
    # the reading evaluate used: the export's (null in the evaluate config: "as the model was trained")
    reading = Reading.of(json.loads((run / "model" / "config.json").read_text())["lit_ner_data"]).record()
    datamodule = instantiate(data, tokenizer_name_or_path=str(tiny_model), **reading, _convert_="all")
    datamodule.prepare_data()
    words = datamodule.cached_words()["test"]
    sentences = read_conll(out / "test.conll")
    assert len(sentences) == len(words) == report["sentences"]
    for lines, tokens, tags in zip(sentences, words["tokens"], words["tags"]):
        assert all(len(line) == 3 for line in lines)
        assert [line[0] for line in lines] == tokens
        assert [line[1] for line in lines] == tags
    predicted = {line[2] for lines in sentences for line in lines}
    assert predicted <= {"O", "B-AUTHOR", "I-AUTHOR", "B-DATE", "I-DATE"}


def test_reported_scores_equal_seqeval_on_the_conll_file(evaluated) -> None:
    report, out = evaluated
    sentences = read_conll(out / "test.conll")
    gold = [[line[1] for line in lines] for lines in sentences]
    pred = [[line[2] for line in lines] for lines in sentences]
    for mode, kwargs in (("default", {}), ("strict", {"mode": "strict", "scheme": IOB2})):
        expected = classification_report(gold, pred, output_dict=True, zero_division=0, **kwargs)
        scores = report["scores"][mode]
        assert set(scores) == {"AUTHOR", "DATE", "micro avg"}
        for name, row in scores.items():
            assert row["precision"] == pytest.approx(expected[name]["precision"], abs=1e-12), (mode, name)
            assert row["recall"] == pytest.approx(expected[name]["recall"], abs=1e-12), (mode, name)
            assert row["f1"] == pytest.approx(expected[name]["f1-score"], abs=1e-12), (mode, name)
            assert row["support"] == expected[name]["support"], (mode, name)
    saved = json.loads((out / "report.json").read_text())
    assert saved["scores"] == report["scores"]
    markdown = (out / "report.md").read_text()
    assert "| AUTHOR |" in markdown and "Strict mode" in markdown and "equal to seqeval" in markdown


def test_confusion_matrix_counts_every_entity_once_and_is_drawn(evaluated) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    report, out = evaluated
    sentences = read_conll(out / "test.conll")
    names, counts = report["confusion"]["labels"], report["confusion"]["counts"]
    assert names == ["AUTHOR", "DATE", "none"]
    for i, name in enumerate(names[:-1]):  # each gold entity in its row, each predicted entity in its column
        assert sum(counts[i]) == report["scores"]["default"][name]["support"]
        predicted = sum(t == name for lines in sentences for t, _, _ in get_entities([line[2] for line in lines]))
        assert sum(row[i] for row in counts) == predicted
    assert counts[-1][-1] == 0
    with Image.open(out / "confusion.png") as image:
        assert image.format == "PNG" and image.width > 200 and image.height > 200
        image.verify()
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(events[0]))
    accumulator.Reload()
    assert "test/confusion_matrix" in accumulator.Tags()["images"]


def test_confusion_pairs_by_span_then_by_overlap() -> None:
    gold = [["B-AUTHOR", "I-AUTHOR", "O", "B-DATE", "O", "B-AUTHOR"], ["O", "B-DATE"]]
    pred = [["B-AUTHOR", "I-AUTHOR", "O", "B-AUTHOR", "I-AUTHOR", "O"], ["B-DATE", "B-AUTHOR"]]
    counts, overlaps = confusion(spans(gold), spans(pred), ["AUTHOR", "DATE"], "none")
    # AUTHOR 0-1 exact; DATE 3 overlaps AUTHOR 3-4; AUTHOR 5 missed; DATE 1 read as AUTHOR 1; DATE 0 spurious
    assert counts == [[1, 0, 1], [2, 0, 0], [0, 1, 0]]
    assert overlaps == [[0, 0, 0], [1, 0, 0], [0, 0, 0]]


def test_worst_sentences_come_first_with_entities_marked(evaluated) -> None:
    tokens = [["alan", "walker", "wrote", "in", "1940"], ["ok"], ["by", "anna", "smith"]]
    gold = [["B-AUTHOR", "I-AUTHOR", "O", "O", "B-DATE"], ["O"], ["O", "B-AUTHOR", "I-AUTHOR"]]
    pred = [["B-AUTHOR", "O", "O", "O", "B-DATE"], ["O"], ["B-DATE", "O", "O"]]
    worst = worst_sentences(tokens, spans(gold), spans(pred), 10)
    assert [(w["sentence"], w["errors"]) for w in worst] == [(0, 2), (2, 2)]  # the right sentence is left out
    assert worst[0]["gold"] == "[alan walker]AUTHOR wrote in [1940]DATE"
    assert worst[0]["predicted"] == "[alan]AUTHOR walker wrote in [1940]DATE"
    report, _ = evaluated
    assert 0 < len(report["worst"]) <= 5
    errors = [w["errors"] for w in report["worst"]]
    assert errors == sorted(errors, reverse=True)


@pytest.mark.parametrize("evaluated", ["export"], indirect=True)
def test_scores_equal_the_test_scores_of_the_training_run(evaluated, run: Path) -> None:
    report, _ = evaluated
    logged = json.loads((run / "metrics.json").read_text())["scores"]  # trainer.test on the same weights
    for name, row in report["scores"]["default"].items():
        suffix = "" if name == "micro avg" else f"_{name}"
        for key in ("precision", "recall", "f1"):
            assert row[key] == pytest.approx(logged[f"test/{key}{suffix}"], abs=1e-6), (name, key)
    assert report["scores"]["strict"]["micro avg"]["f1"] == pytest.approx(logged["test/strict_f1"], abs=1e-6)


@pytest.mark.parametrize("evaluated", ["export"], indirect=True)
def test_checkpoint_scores_equal_its_export(evaluated, run: Path) -> None:
    report, _ = evaluated
    from_ckpt = evaluate(eval_cfg(run / "checkpoints" / "best.ckpt", run.parent / "eval_ckpt", run.parent / "cache"))
    assert from_ckpt["scores"] == report["scores"]


@pytest.mark.parametrize("evaluated", ["encoder"], indirect=True)
def test_untrained_encoder_is_the_zero_shot_baseline(evaluated) -> None:
    report, out = evaluated
    assert report["zero_shot"] and "zero-shot baseline" in (out / "report.md").read_text()
    # its random head tags words all over: the comparisons with seqeval above are not between empty sets
    assert sum(report["confusion"]["counts"][-1]) > 0


def spans(tags: list[list[str]]) -> list[list[tuple[str, int, int]]]:
    return [entity_spans(sentence) for sentence in tags]


def test_long_sentences_are_read_in_windows(run: Path, tmp_path: Path) -> None:
    # 12 sub-tokens a row: most sentences take several windows; each word must still get one prediction
    conll = tmp_path / "windows.conll"
    overrides = ("data.max_length=12", "data.window_context=2", f"conll={conll}")
    cfg = eval_cfg(run / "model", tmp_path, tmp_path / "cache", *overrides)
    report = evaluate(cfg)
    assert report["windowed_sentences"] > report["sentences"] // 2
    sentences = read_conll(conll)
    assert sum(map(len, sentences)) == report["words"]


def test_bad_model_or_split_stops_with_what_to_do(run: Path, tmp_path: Path) -> None:
    cache = run.parent / "cache"
    with pytest.raises(ConfigError, match="no checkpoint there"):
        evaluate(eval_cfg(tmp_path / "missing.ckpt", tmp_path, cache))
    with pytest.raises(ConfigError, match="missing: no such folder"):
        evaluate(eval_cfg(tmp_path / "missing", tmp_path, cache))
    with pytest.raises(ConfigError, match="outputs/run/model: no such folder"):
        evaluate(eval_cfg("outputs/run/model", tmp_path, cache))  # relative, as users type it
    with pytest.raises(ConfigError, match="no model folder, checkpoint or Hub model there"):
        evaluate(eval_cfg("nobody/no-such-model", tmp_path, cache))  # offline: the Hub cannot have it
    with pytest.raises(ConfigError, match="no config.json"):
        evaluate(eval_cfg(run, tmp_path, cache))  # a run folder, not its export
    with pytest.raises(ConfigError, match="splits train, validation, test"):
        evaluate(eval_cfg(run / "model", tmp_path, cache, "split=dev"))


def test_a_home_relative_export_loads(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(run.parent))
    info = inspect_model(f"~/{run.name}/model")  # as typed, unexpanded by the shell
    assert info.kind == "export" and info.labels[0] == "O" and info.tokenizer == str(run / "model")


def test_command_line_takes_model_as_a_path(run: Path, tmp_path: Path) -> None:
    assert model_argument("model=minilm", any_name=True) == "model=minilm"  # a conf/model file stays a group choice
    assert model_argument("model=out/model", any_name=True) == "model.model_name_or_path=out/model"
    best = run / "checkpoints" / "best.ckpt"
    command = [
        sys.executable, "-m", "lit_ner.evaluate", f"model={best}", f"output_dir={tmp_path / 'eval'}",
        f"data.cache_dir={run.parent / 'cache'}", f"data.synthetic_size={SIZE}", f"hydra.run.dir={tmp_path / 'hydra'}",
    ]  # fmt: skip
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "## Default mode" in done.stdout
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["sentences"] == SIZE // 10
    # the checkpoint's trained head is used: no report of a "newly initialized" one from building the encoder first
    assert "MISSING" not in done.stdout + done.stderr, done.stderr[-3000:]


def test_strict_scheme_comes_from_the_labels_not_the_gold() -> None:
    # an IOBES model on data whose gold has only B/I/O tags, or no entity at all: seqeval must read IOBES too
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    gold = [["B-PER", "I-PER", "O"], ["O", "O", "O"]]
    pred = [["B-PER", "E-PER", "O"], ["S-PER", "O", "O"]]
    # raised seqeval's "Invalid token is found: E-PER" before
    scores, _ = entity_scores(labels, spans(gold), spans(pred), gold, pred, tagger=True)
    strict = scores["strict"]
    assert strict["PER"]["support"] == 0 and strict["micro avg"]["precision"] == 0.0  # B I O is no IOBES entity


def test_command_line_data_errors_are_one_line(tiny_model: Path, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "lit_ner.evaluate", f"model={tiny_model}", f"output_dir={tmp_path / 'eval'}",
        f"hydra.run.dir={tmp_path / 'hydra'}", f"data.cache_dir={tmp_path / 'cache'}",
    ]  # fmt: skip
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    # no such data.path (a DataError in prepare_data); no data source (a ConfigError inside instantiate)
    for wrong in (["data=local", f"data.path={tmp_path / 'nowhere'}"], ["data.synthetic=null"]):
        done = subprocess.run([*command, *wrong], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
        assert len([line for line in done.stderr.splitlines() if line.startswith("lit_ner: error:")]) == 1


def test_a_checkpoint_that_is_not_one_stops_with_what_is_wrong(tmp_path: Path) -> None:
    cut = tmp_path / "best.ckpt"
    cut.write_bytes(b"PK\x03\x04 cut short")  # a zip's first bytes, no more: a copy interrupted early
    with pytest.raises(ConfigError, match="not a PyTorch checkpoint"):
        inspect_model(str(cut))


# ---- beyond exact match, the HTML report, calibrated scores


def test_semeval_scores_equal_nervaluates_on_the_prediction_file(evaluated) -> None:
    nervaluate = pytest.importorskip("nervaluate", reason="the dev extra: pip install -e '.[dev]'")
    report, out = evaluated
    sentences = read_conll(out / "test.conll")
    gold = [[line[1] for line in lines] for lines in sentences]
    pred = [[line[2] for line in lines] for lines in sentences]
    types = sorted({t for tags in gold + pred for t, _, _ in get_entities(tags)})
    theirs = nervaluate.Evaluator(gold, pred, tags=types, loader="list").evaluate()
    overall = theirs[0] if isinstance(theirs, tuple) else theirs["overall"]
    for scheme in ("strict", "exact", "partial", "ent_type"):
        mine = report["semeval"]["overall"][scheme]
        expected = overall[scheme] if isinstance(overall[scheme], dict) else vars(overall[scheme])
        for key in ("correct", "incorrect", "partial", "missed", "spurious", "precision", "recall", "f1"):
            assert mine[key] == pytest.approx(expected[key], abs=1e-12), (scheme, key)
    assert sum(report["error_kinds"]["overall"].values()) >= report["semeval"]["overall"]["strict"]["spurious"]
    micro = report["bootstrap"]["micro"]
    assert micro["low"] <= report["scores"]["default"]["micro avg"]["f1"] <= micro["high"]


def test_every_sentence_with_an_error_is_in_errors_jsonl_with_scores(evaluated) -> None:
    report, out = evaluated
    records = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    sentences = read_conll(out / "test.conll")
    wrong = {i for i, lines in enumerate(sentences)
             if get_entities([l[1] for l in lines]) != get_entities([l[2] for l in lines])}  # fmt: skip
    assert {r["sentence"] for r in records} == wrong
    assert [r["errors"] for r in records] == sorted((r["errors"] for r in records), reverse=True)
    for record in records:
        assert all(0 < e["score"] <= 1 for e in record["predicted"])
        assert all(e["kind"] in ("correct", "boundary", "type", "boundary_and_type", "missed", "spurious")
                   for e in record["gold"] + record["predicted"])  # fmt: skip


def test_the_html_report_shows_the_entities_in_a_browser(evaluated, tmp_path: Path) -> None:
    from test_report_html import CHROMIUM, Elements, chromium

    report, out = evaluated
    page = (out / "report.html").read_text()
    assert "http://" not in page and "https://" not in page  # self-contained: nothing to fetch
    if CHROMIUM is None:
        pytest.skip("no chromium here (Debian's package chromium; .ci/run installs it)")
    records = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    shown = Elements(chromium(tmp_path, "--virtual-time-budget=3000", "--dump-dom", (out / "report.html").as_uri()))
    marks = [m for m in shown.marks if m.get("data-kind")]
    assert len(marks) == sum(len(r["gold"]) + len(r["predicted"]) for r in records) > 0


def test_calibration_fits_a_temperature_and_saved_thresholds_reach_predict(run: Path, tmp_path: Path) -> None:
    import shutil

    from lit_ner.predict import NerPredictor

    export = tmp_path / "model"
    shutil.copytree(run / "model", export)
    assert json.loads((export / "config.json").read_text())["lit_ner_calibration"]["temperature"] > 0  # training's
    report = evaluate(eval_cfg(export, tmp_path / "a", run.parent / "cache", "save_thresholds=true",
                               f"conll={tmp_path / 'a.conll'}"))  # fmt: skip
    calibration = report["calibration"]
    assert 0 < calibration["temperature"] and {"ece_before", "ece_after", "thresholds"} <= set(calibration)
    for name in ("reliability.png", "pr_curves.png", "pr_curves.json"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    stored = json.loads((export / "config.json").read_text())["lit_ner_calibration"]
    assert stored["thresholds"] == {t: b["threshold"] for t, b in calibration["thresholds"].items()}
    # predict applies the stored thresholds, and evaluate scores what predict returns
    predictor = NerPredictor.from_pretrained(export, device="cpu")
    assert predictor.calibration.thresholds == stored["thresholds"]
    sentences = read_conll(tmp_path / "a.conll")
    found = predictor.words([[line[0] for line in lines] for lines in sentences])
    for lines, entities in zip(sentences, found):
        expected = entity_spans([line[2] for line in lines])
        assert [(e["type"], e["word_start"], e["word_end"]) for e in entities] == expected
        assert all(e["score"] >= stored["thresholds"].get(e["type"], 0) for e in entities)
    everything = NerPredictor.from_pretrained(export, device="cpu", min_score=0.0)
    assert sum(map(len, everything.words([[l[0] for l in s] for s in sentences]))) >= sum(map(len, found))
