"""Prediction with an exported model: lit_ner.inference's reading (what evaluate scores), raw text and its offsets,
long documents, word aggregation, the CLI."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import numpy as np
import torch
from transformers import pipeline

from lit_ner.errors import ConfigError
from lit_ner.data.words import split_words
from lit_ner.data.reading import Reading
from lit_ner.heads import AGGREGATIONS, build_head
from lit_ner.inference import Tagger
from lit_ner.predict import NerPredictor, main
from lit_ner.train import train

SENTENCES = [
    "Alan Walker published The Long Road in 1940.",
    "In 1987, Anna Smith wrote a novel called Élodie's Garden.",
    "Mary Walker's vibrant self-portraits, painted in 1923, express her tumultuous inner world.",
    "Thomas Müller (1901–1977) was a poet.",  # the en dash is not in the tiny vocabulary: [UNK]
    "The 3rd edition costs $12.50 and was printed on 2003-04-01!",
    "Peter and John co-wrote « Paris Nights » in 2003; it sold 12,000 copies.",
    "The library owns 7 copies of Anna's book.",
    "Zoë Ångström was born in Berlin in 1899.",
    "",
    "the river",
]


@pytest.fixture(scope="module")
def model_folder(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, make_cfg) -> Path:
    """The tiny model trained for real on the book corpus; with a high lr and every sub-token labelled it tags dates."""
    root = tmp_path_factory.mktemp("predict")
    overrides = ["model.lr=1e-2", "data.label_all_tokens=true", "trainer.max_epochs=3", "test=false"]
    result = train(make_cfg(root / "run", tiny_model, root / "cache", *overrides, size=200))
    return Path(result["export"])


def assert_same_entities(ours: list[dict], theirs: list[dict]) -> None:
    """Equal but for float noise in the scores (padding to another batch's length changes the last bits)."""
    assert [e | {"score": 0} for e in ours] == [e | {"score": 0} for e in theirs]
    assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(ours, theirs))


def test_raw_text_is_split_by_the_pretokenizer_and_offsets_index_the_text(model_folder: Path) -> None:
    predictor = NerPredictor.from_pretrained(model_folder, device="cpu")
    assert predictor.reading.pretokenizer == "punctuation"  # the export's, recorded by training
    texts = [*SENTENCES, "  Alan\tWalker  wrote\n\nin   1940 🎉 and Zoë   in 1987 😀.\r\n", "\t\n "]
    found = predictor(texts)
    assert sum(map(len, found)) >= 4, "the trained model must tag something, or this test proves nothing"
    for text, entities in zip(texts, found):
        words = split_words(text)
        starts, ends = {s for _, s, _ in words}, {e for _, _, e in words}
        for e in entities:
            assert text[e["start"] : e["end"]] == e["text"] and e["start"] in starts and e["end"] in ends
            assert 0 < e["score"] <= 1
        # a text reads as its words do: the same entities as the pre-split words, at the text's offsets
        by_words = predictor.words([[w for w, _, _ in words]])[0]
        assert [(e["type"], e["word_start"], e["word_end"]) for e in entities] == [
            (e["type"], e["word_start"], e["word_end"]) for e in by_words
        ]
        assert [e["score"] for e in entities] == pytest.approx([e["score"] for e in by_words], abs=1e-5)
    assert_same_entities(predictor(SENTENCES[1]), found[1])  # one text in, its entities out
    assert found[-1] == [] and predictor("") == []


def test_the_pretokenizer_is_a_recorded_setting(model_folder: Path) -> None:
    punctuation = NerPredictor.from_pretrained(model_folder, device="cpu")
    reading = Reading.of(punctuation.reading.record() | {"pretokenizer": "whitespace"})
    whitespace = NerPredictor(punctuation.opened, reading=reading)
    text = "Anna Smith wrote it in 1987."
    assert [w for w, _, _ in punctuation.split(text)][-2:] == ["1987", "."]
    assert [w for w, _, _ in whitespace.split(text)][-1] == "1987."
    assert all(text[e["start"] : e["end"]] == e["text"] for e in whitespace(text))
    with pytest.raises(ConfigError, match="data.pretokenizer='spaces'"):
        NerPredictor(punctuation.opened, reading=Reading.of(punctuation.reading.record() | {"pretokenizer": "spaces"}))


def test_an_entity_is_decoded_from_word_tags_with_the_mean_word_score() -> None:
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    tags = ["B-PER", "I-PER", "O", "I-LOC", "B-PER"]
    scores = np.array([0.9, 0.5, 0.99, 0.6, 0.8])
    probabilities = np.zeros((5, len(labels)))
    probabilities[np.arange(5), [labels.index(t) for t in tags]] = scores
    decoded = build_head(None, labels).decoded(probabilities.argmax(-1), probabilities, None)
    # seqeval's default reading: an I- after O opens an entity
    assert decoded.entities == [("PER", 0, 2, pytest.approx(0.7)), ("LOC", 3, 4, pytest.approx(0.6)),
                                ("PER", 4, 5, pytest.approx(0.8))]  # fmt: skip


class FixedLogits:
    """A runner whose logits are set per token id: label 1 for id 7, label 2 for id 8, O otherwise."""

    def __call__(self, inputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        input_ids = inputs["input_ids"]
        logits = np.zeros((*input_ids.shape, 3), dtype=np.float32)
        logits[..., 0] = 1.0
        logits[(input_ids == 7).numpy(), 1] = 3.0
        logits[(input_ids == 8).numpy(), 2] = 5.0
        return {"logits": logits}


def test_a_words_tag_comes_from_its_first_sub_token_unless_another_aggregation_is_asked(tiny_model: Path) -> None:
    from lit_ner.data.encode import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model))
    pieces = tokenizer(["ab"], is_split_into_words=True, add_special_tokens=False)["input_ids"]
    assert len(pieces) == 2  # "a", "##b": one word of two sub-tokens
    runner = FixedLogits()
    head = build_head(None, ["O", "B-X", "B-Y"])

    def tag(aggregation: str, ids: tuple[int, int]) -> tuple[str, float]:
        tokenizer_ids = {pieces[0]: ids[0], pieces[1]: ids[1]}

        def relabel(inputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
            return runner({"input_ids": inputs["input_ids"].apply_(lambda i: tokenizer_ids.get(i, i))})

        tagged = Tagger(relabel, tokenizer, head, Reading(), aggregation=aggregation)([["ab"]])[0]
        return tagged.tags[0], float(tagged.word_scores[0])

    assert tag("first", (7, 0))[0] == "B-X" and tag("first", (0, 8))[0] == "O"  # the first sub-token decides
    assert tag("max", (7, 8))[0] == "B-Y"  # the surest sub-token
    label, score = tag("average", (7, 8))  # the mean of the two sub-tokens' probabilities
    p7, p8 = np.exp([1.0, 3.0, 0.0]), np.exp([1.0, 0.0, 5.0])
    assert label == "B-Y" and score == pytest.approx(((p7 / p7.sum()) + (p8 / p8.sum()))[2] / 2, rel=1e-5)
    with pytest.raises(ConfigError, match="aggregation=simple"):
        Tagger(runner, tokenizer, head, Reading(), aggregation="simple")
    assert AGGREGATIONS == ("first", "average", "max")


def test_a_long_document_is_read_to_its_end_in_trainings_windows(model_folder: Path) -> None:
    from lit_ner.data.align import plan_windows

    predictor = NerPredictor.from_pretrained(model_folder, device="cpu", window_context=16)
    filler = " ".join(["Alan Walker wrote a book about the old river and the city in 1940."] * 12)
    ending = " In 1987, Anna Smith wrote Élodie's Garden; it appeared in 1923."
    document = filler + ending
    words = [w for w, _, _ in predictor.split(document)]
    pieces = [len(predictor.tokenizer(w, add_special_tokens=False)["input_ids"]) or 1 for w in words]
    windows = plan_windows(pieces, 128 - 2, 16)
    assert len(windows) >= 3  # the model (128 positions) reads it in several windows, each word scored in one
    rows = []
    original = predictor.runner.forward
    predictor.runner.forward = lambda **batch: rows.append(batch["input_ids"].shape[0]) or original(**batch)
    found = predictor(document)
    assert sum(rows) == len(windows)
    assert len(predictor.word_tags([words])[0].tags) == len(words)
    at_end = [e for e in found if e["start"] >= len(filler)]
    assert {e["text"] for e in at_end} >= {"1987", "1923"}
    assert all(document[e["start"] : e["end"]] == e["text"] for e in found)
    assert all(a["end"] <= b["start"] for a, b in zip(found, found[1:]))


def test_the_export_still_loads_in_transformers_pipeline(model_folder: Path) -> None:
    ner = pipeline("token-classification", model=str(model_folder), aggregation_strategy="first", device="cpu")
    assert {e["entity_group"] for e in ner("Alan Walker published The Long Road in 1940.")} <= {"AUTHOR", "DATE"}


def run_cli(*args: str, python_options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    command = [sys.executable, *python_options, "-m", "lit_ner.predict", *args]
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_cli_tags_a_text_file_into_json_lines(model_folder: Path, tmp_path: Path) -> None:
    (tmp_path / "docs.txt").write_text("\n".join(SENTENCES[:3] + ["", SENTENCES[3]]) + "\n")
    out = tmp_path / "out" / "tagged.jsonl"
    out.parent.mkdir()
    inputs = f"input={tmp_path / 'docs.txt'}"
    done = run_cli(f"model={model_folder}", inputs, f"output={out}", "aggregation=first", "batch_size=2")
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in records] == SENTENCES[:3] + ["", SENTENCES[3]]  # one record a line, blank ones kept
    expected = NerPredictor.from_pretrained(model_folder, aggregation_strategy="first", device="cpu")
    for record, entities in zip(records, expected([r["text"] for r in records])):
        assert_same_entities(record["entities"], entities)
    assert any(r["entities"] for r in records)
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind


def test_cli_reads_json_lines_with_text_or_tokens(model_folder: Path, tmp_path: Path, capsys) -> None:
    rows = [{"id": 1, "text": SENTENCES[1]}, {"id": 2, "tokens": SENTENCES[3].split()}]
    (tmp_path / "docs.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    main([f"model={model_folder}", f"input={tmp_path / 'docs.jsonl'}"])  # standard output by default
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in records] == [1, 2]
    predictor = NerPredictor.from_pretrained(model_folder, device="cpu")
    assert_same_entities(records[0]["entities"], predictor(SENTENCES[1]))
    assert_same_entities(records[1]["entities"], predictor.words([SENTENCES[3].split()])[0])
    assert all("word_start" in e for e in records[1]["entities"])

    main([f"model={model_folder}", f"text={SENTENCES[1]}"])
    assert_same_entities(json.loads(capsys.readouterr().out)["entities"], predictor(SENTENCES[1]))


def test_conll_in_conll_out_adds_the_predicted_tag_column(model_folder: Path, tmp_path: Path) -> None:
    """A CoNLL file (tab-separated word and gold tag, two -DOCSTART- documents) comes back line for line with a
    third column, the predicted tag of each word (the model's own labels, as evaluate writes them); conlleval-style
    tools score it against the gold column."""
    from seqeval.metrics import f1_score

    from lit_ner.data.books import make_book_corpus
    from lit_ner.data.schemes import convert_tags, entity_spans

    corpus = make_book_corpus(30, seed=3)["train"]
    lines = []
    for i, (tokens, tags) in enumerate(zip(corpus["tokens"], corpus["tags"])):
        if i % 12 == 0:
            lines += ["-DOCSTART-\tO", ""]
        lines += [f"{word}\t{tag}" for word, tag in zip(tokens, convert_tags(tags, "plain"))] + [""]
    source = tmp_path / "corpus.conll"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    main([f"model={model_folder}", f"input={source}", f"output={tmp_path / 'tagged.conll'}"])
    tagged = (tmp_path / "tagged.conll").read_text(encoding="utf-8").splitlines()
    assert len(tagged) == len(lines)
    gold, predicted, sentence_words = [[]], [[]], [[]]
    for before, after in zip(lines, tagged):
        if not before or before.startswith("-DOCSTART-"):
            assert after == before
            if gold[-1]:
                gold.append([]), predicted.append([]), sentence_words.append([])
            continue
        word, tag, guess = after.split("\t")
        assert f"{word}\t{tag}" == before and re.fullmatch(r"O|[BI]-(AUTHOR|DATE)", guess)
        gold[-1].append(tag), predicted[-1].append(guess), sentence_words[-1].append(word)
    found = NerPredictor.from_pretrained(model_folder, device="cpu").words(sentence_words)
    for guesses, entities in zip(predicted, found):  # the column's entities are the predictor's
        assert entity_spans(guesses) == [(e["type"], e["word_start"], e["word_end"]) for e in entities]
    assert f1_score(gold, predicted) > 0.3


def test_cli_needs_neither_lightning_nor_hydra_and_names_a_missing_model(tmp_path: Path) -> None:
    done = run_cli(f"model={tmp_path / 'nowhere'}", "text=Alan Walker", python_options=("-X", "importtime"))
    assert done.returncode == 2 and "Traceback" not in done.stderr and "lit_ner: error: model=" in done.stderr
    assert f"model={tmp_path / 'nowhere'}: no such folder" in done.stderr and "<run_dir>/model" in done.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert "transformers" in imported and "lit_ner.errors" in imported  # the module itself runs as __main__
    # lit_ner.data.encode (the tokenizer checks) is allowed: the package's NerDataModule is imported lazily
    training_only = (
        "lightning", "pytorch_lightning", "hydra", "omegaconf", "lit_ner.data.datamodule", "lit_ner.module"
    )  # fmt: skip
    assert [m for m in imported if m.startswith(training_only)] == []


def cli_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """The one line `main(argv)` prints for bad input, after checking it exits with status 2 like every entry point."""
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith("lit_ner: error: "), line
    return line


def test_cli_errors_name_the_file_and_line_and_keep_the_old_output(model_folder: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": "cut off\n')
    out = tmp_path / "out.jsonl"
    out.write_text("from an earlier run\n")
    assert f"input={bad}, line 2:" in cli_error(capsys, [f"model={model_folder}", f"input={bad}", f"output={out}"])
    assert out.read_text() == "from an earlier run\n" and sorted(tmp_path.iterdir()) == [bad, out]

    bad.write_text('{"text": "fine"}\n\n["not", "an", "object"]\n')  # blank lines are skipped, but counted
    assert "line 3: expected a JSON object" in cli_error(capsys, [f"model={model_folder}", f"input={bad}"])
    nothing = tmp_path / "nothing.txt"
    assert "nothing.txt: cannot read" in cli_error(capsys, [f"model={model_folder}", f"input={nothing}"])


def test_scores_do_not_depend_on_the_tokenizer_padding_side(model_folder: Path) -> None:
    predictor = NerPredictor.from_pretrained(model_folder, batch_size=4, device="cpu")
    right = predictor(SENTENCES)
    predictor.tokenizer.padding_side = "left"  # as some models save it; each row's scores are its first tokens
    assert_same_entities([e for s in predictor(SENTENCES) for e in s], [e for s in right for e in s])


def test_the_compiled_forward_gives_the_same_entities(model_folder: Path) -> None:
    eager = NerPredictor.from_pretrained(model_folder, batch_size=4, device="cpu")
    compiled = NerPredictor.from_pretrained(model_folder, batch_size=4, device="cpu", compile=True)
    expected = eager(SENTENCES)
    assert sum(map(len, expected)) >= 3
    for ours, theirs in zip(compiled(SENTENCES), expected):  # batches of 4, 4 and 2
        assert_same_entities(ours, theirs)
    assert_same_entities(compiled(SENTENCES[1]), expected[1])  # a batch of one, read as two rows
    with pytest.raises(ConfigError, match="compile=true"):
        NerPredictor.from_pretrained(model_folder, backend="onnx", compile=True)


def test_a_home_relative_folder_loads(model_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(model_folder.parent))
    home_relative = NerPredictor.from_pretrained(f"~/{model_folder.name}", device="cpu")
    text = "mary walker wrote the book in 1987"
    assert home_relative(text) == NerPredictor.from_pretrained(model_folder, device="cpu")(text)


def test_a_folder_that_is_no_export_stops_with_what_to_give(model_folder: Path, tmp_path: Path) -> None:
    weights = tmp_path / "weights_only"  # config and weights, but no tokenizer files: every word would be [UNK]
    weights.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(model_folder / name, weights / name)
    with pytest.raises(ConfigError, match="no vocabulary beyond its special tokens"):
        NerPredictor.from_pretrained(weights, device="cpu")
    (weights / "model.safetensors").unlink()  # a config alone (a run or cache folder)
    with pytest.raises(ConfigError, match=re.escape(f"model={weights}: cannot load a model") + ".*<run_dir>/model"):
        NerPredictor.from_pretrained(weights, device="cpu")


def test_window_sizes_are_checked_and_named(model_folder: Path, capsys) -> None:
    with pytest.raises(ConfigError, match="max_length=129 is above the 128 positions"):  # the tiny model has 128
        NerPredictor.from_pretrained(model_folder, max_length=129, device="cpu")
    with pytest.raises(ConfigError, match="max_length=2 leaves no room"):  # [CLS] and [SEP] fill it
        NerPredictor.from_pretrained(model_folder, max_length=2, device="cpu")
    for arg in ("max_length=0", "batch_size=0", "window_context=-1", "max_length=x"):
        message = cli_error(capsys, [f"model={model_folder}", "text=Alan Walker", arg])
        assert f"{arg}: expected a whole number" in message
    message = cli_error(capsys, [f"model={model_folder}", "text=Alan Walker", "compile=yes"])
    assert "compile=yes: give true or false" in message


def test_input_must_be_json_lines_and_may_open_with_a_byte_order_mark(model_folder: Path, tmp_path: Path, capsys):
    array = tmp_path / "docs.json"
    array.write_text(json.dumps([{"text": SENTENCES[0]}], indent=1))  # what json.dump writes: one array
    message = cli_error(capsys, [f"model={model_folder}", f"input={array}"])
    assert f"input={array} must be JSON Lines: one object a line" in message
    array.write_text(json.dumps({"text": SENTENCES[0]}) + "\n", encoding="utf-8-sig")  # as Windows Notepad saves
    main([f"model={model_folder}", f"input={array}"])
    assert json.loads(capsys.readouterr().out)["text"] == SENTENCES[0]


def test_label_studio_tasks_come_back_pre_annotated_least_sure_first(model_folder: Path, tmp_path: Path) -> None:
    from lit_ner.data.sources import load_ner_dataset

    tasks = [{"id": i, "data": {"text": text}} for i, text in enumerate(SENTENCES[:8])]
    (tmp_path / "tasks.json").write_text(json.dumps(tasks, ensure_ascii=False))
    out = tmp_path / "pre.json"
    main([f"model={model_folder}", f"input={tmp_path / 'tasks.json'}", "format=label-studio", "sort=uncertainty",
          f"output={out}"])  # fmt: skip
    written = json.loads(out.read_text())
    assert sorted(t["id"] for t in written) == list(range(8))
    scores = [t["predictions"][0]["score"] for t in written]
    assert scores == sorted(scores)  # Label Studio's uncertainty sampling serves the lowest score first
    predictor = NerPredictor.from_pretrained(model_folder, device="cpu")
    for task in written:
        prediction = task["predictions"][0]
        assert prediction["model_version"].startswith(model_folder.parent.name)
        expected = predictor(task["data"]["text"])
        assert [(r["value"]["start"], r["value"]["end"], r["value"]["labels"]) for r in prediction["result"]] == [
            (e["start"], e["end"], [e["type"]]) for e in expected
        ]
        assert all(r["from_name"] == "label" and r["to_name"] == "text" and r["type"] == "labels"
                   for r in prediction["result"])  # fmt: skip
    assert any(t["predictions"][0]["result"] for t in written)
    # accepted as they are, the pre-annotations are training data, and the doccano lines too
    accepted = [t | {"annotations": [{"id": 1, "result": t["predictions"][0]["result"]}]} for t in written]
    folder = tmp_path / "accepted"
    folder.mkdir()
    (folder / "train.json").write_text(json.dumps(accepted, ensure_ascii=False))
    read = load_ner_dataset(path=str(folder))
    assert sum(len(tags) for tags in read["train"]["tags"]) + sum(len(t) for t in read["validation"]["tags"]) > 0
    main([f"model={model_folder}", f"input={tmp_path / 'tasks.json'}", "format=doccano",
          f"output={tmp_path / 'pre.jsonl'}"])  # fmt: skip
    lines = [json.loads(line) for line in (tmp_path / "pre.jsonl").read_text().splitlines()]
    assert [line["text"] for line in lines] == SENTENCES[:8]
    assert [[tuple(x) for x in line["label"]] for line in lines] == [
        [(e["start"], e["end"], e["type"]) for e in found] for found in predictor(SENTENCES[:8])
    ]


def test_min_score_names_types_of_the_model_and_drops_unsure_entities(model_folder: Path, capsys) -> None:
    everything = NerPredictor.from_pretrained(model_folder, device="cpu", min_score=0.0)(SENTENCES)
    scores = sorted(e["score"] for s in everything for e in s)
    assert len(scores) >= 3
    middle = scores[len(scores) // 2]
    kept = NerPredictor.from_pretrained(model_folder, device="cpu", min_score=middle)(SENTENCES)
    assert [e for s in kept for e in s] == [e for s in everything for e in s if e["score"] >= middle]
    message = cli_error(capsys, [f"model={model_folder}", "text=Alan Walker", "min_score=PERSON:0.5"])
    assert "PERSON is no entity type of this model (AUTHOR, DATE)" in message
    assert "min_score=high: give a score" in cli_error(capsys, [f"model={model_folder}", "text=x", "min_score=high"])
