"""Prediction with an exported model: the same entities as transformers' pipeline, long documents, the CLI."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import pipeline

from lit_ner.errors import ConfigError
from lit_ner.predict import STRATEGIES, NerPredictor, main, parse_args, token_sources
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


def as_pipeline(entities: list[dict]) -> list[tuple]:
    return [(e["entity_group"], e["start"], e["end"], float(e["score"])) for e in entities]


def as_predictor(entities: list[dict]) -> list[tuple]:
    return [(e["type"], e["start"], e["end"], e["score"]) for e in entities]


def assert_same(ours: list[tuple], theirs: list[tuple]) -> None:
    assert [e[:3] for e in ours] == [e[:3] for e in theirs]
    assert all(abs(a[3] - b[3]) < 1e-5 for a, b in zip(ours, theirs))


def assert_same_entities(ours: list[dict], theirs: list[dict]) -> None:
    """Equal but for float noise in the scores (padding to another batch's length changes the last bits)."""
    assert [e | {"score": 0} for e in ours] == [e | {"score": 0} for e in theirs]
    assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(ours, theirs))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_entities_equal_the_transformers_pipeline(model_folder: Path, strategy: str) -> None:
    ner = pipeline("token-classification", model=str(model_folder), aggregation_strategy=strategy, device="cpu")
    predictor = NerPredictor.from_pretrained(model_folder, aggregation_strategy=strategy, batch_size=4, device="cpu")
    found = predictor(SENTENCES)  # batched with padding: scores may differ from the unpadded pipeline by float noise
    expected = [as_pipeline(ner(s)) if s else [] for s in SENTENCES]
    assert sum(map(len, expected)) >= 3, "the trained model must tag something, or this comparison proves nothing"
    for sentence, ours, theirs in zip(SENTENCES, found, expected):
        assert_same(as_predictor(ours), theirs)
        assert all(sentence[e["start"] : e["end"]] == e["text"] for e in ours)
    assert_same_entities(predictor(SENTENCES[1]), found[1])  # one text in, its entities out

    words = [s.split() for s in SENTENCES]
    for sentence_words, ours in zip(words, predictor.words(words)):
        theirs = as_pipeline(ner(sentence_words, is_split_into_words=True)[0]) if sentence_words else []
        assert_same(as_predictor(ours), theirs)
        for e in ours:
            held_by = sentence_words[e["word_start"] : e["word_end"]]
            assert held_by and e["text"] in " ".join(held_by)


def test_each_token_is_read_from_the_window_where_it_sits_nearest_the_centre() -> None:
    # two windows of 6 tokens sharing 2 (document tokens 4 and 5): 4 is nearer the first centre, 5 the second
    assert token_sources([6, 6], 2) == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 1), (1, 2), (1, 3), (1, 4), (1, 5)]
    # three windows sharing 3 tokens: token 3 is as near both first centres (the earlier wins), 4 sits on the second
    assert token_sources([5, 5, 3], 3) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 2), (2, 1), (2, 2)]
    assert token_sources([4], 2) == [(0, 0), (0, 1), (0, 2), (0, 3)] and token_sources([], 2) == []


def test_a_long_document_is_read_to_its_end(model_folder: Path) -> None:
    predictor = NerPredictor.from_pretrained(model_folder, aggregation_strategy="first", overlap=32, device="cpu")
    filler = " ".join(["Alan Walker wrote a book about the old river and the city in 1940."] * 12)
    ending = " In 1987, Anna Smith wrote Élodie's Garden; it appeared in 1923."
    document = filler + ending
    windows = predictor.tokenizer(
        document, truncation=True, max_length=128, stride=32, return_overflowing_tokens=True,  # transformers' overlap
        return_special_tokens_mask=True,
    )  # fmt: skip
    assert len(windows["input_ids"]) >= 3  # the model (128 positions) sees it in several windows
    contents = [
        [t for t, special in zip(ids, mask) if not special]
        for ids, mask in zip(windows["input_ids"], windows["special_tokens_mask"])
    ]
    merged = [contents[window][index] for window, index in token_sources([len(c) for c in contents], 32)]
    assert merged == predictor.tokenizer(document, add_special_tokens=False)["input_ids"]  # each token once, in order

    found = predictor(document)
    at_end = [e for e in found if e["start"] >= len(filler)]
    assert {e["text"] for e in at_end} >= {"1987", "1923"}
    assert all(document[e["start"] : e["end"]] == e["text"] for e in found)
    assert all(a["end"] <= b["start"] for a, b in zip(found, found[1:]))
    # pre-split words go through the same windows, with offsets into the joined words
    by_words = predictor.words([document.split()])[0]
    assert_same_entities([{k: e[k] for k in found[0]} for e in by_words], found)

    # the first window is exactly what the pipeline sees of the first 126 tokens: up to the middle of that
    # window (where the next window starts to see tokens with more context) both must agree
    first = predictor.tokenizer(document, truncation=True, max_length=128, return_offsets_mapping=True)
    offsets = first["offset_mapping"][1:-1]
    prefix = document[: offsets[-1][1]]
    middle = offsets[len(offsets) // 2 - 1][0]
    ner = pipeline("token-classification", model=str(model_folder), aggregation_strategy="first", device="cpu")
    theirs = [e for e in as_pipeline(ner(prefix)) if e[2] <= middle]
    assert theirs, "the compared part must hold entities"
    assert_same([e for e in as_predictor(found) if e[2] <= middle], theirs)


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
    third column, the predicted IOB2 tag of each word; conlleval-style tools score it against the gold column."""
    from seqeval.metrics import f1_score

    from lit_ner.data.books import make_book_corpus
    from lit_ner.data.schemes import convert_tags

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
    for guesses, entities in zip(predicted, found):
        spans = [(e["type"], e["word_start"], e["word_end"]) for e in entities]
        starts = [(g[2:], i) for i, g in enumerate(guesses) if g.startswith("B-")]
        assert starts == [(t, a) for t, a, _ in spans]
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
        NerPredictor(compiled.model, compiled.tokenizer, runner=compiled.model, compile=True)


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
    with pytest.raises(ConfigError, match="max_length=129: above the 128 positions"):  # the tiny model has 128
        NerPredictor.from_pretrained(model_folder, max_length=129, device="cpu")
    with pytest.raises(ConfigError, match="max_length=2: leaves no room"):  # [CLS] and [SEP] fill it
        NerPredictor.from_pretrained(model_folder, max_length=2, device="cpu")
    for arg in ("max_length=0", "batch_size=0", "overlap=-1", "max_length=x"):
        message = cli_error(capsys, [f"model={model_folder}", "text=Alan Walker", arg])
        assert f"{arg}: expected a whole number" in message
    message = cli_error(capsys, [f"model={model_folder}", "text=Alan Walker", "compile=yes"])
    assert "compile=yes: give true or false" in message
    with pytest.raises(ConfigError, match="'stride=16': stride= is now called overlap="):  # the option's old name
        parse_args([f"model={model_folder}", "text=Alan Walker", "stride=16"])


def test_input_must_be_json_lines_and_may_open_with_a_byte_order_mark(model_folder: Path, tmp_path: Path, capsys):
    array = tmp_path / "docs.json"
    array.write_text(json.dumps([{"text": SENTENCES[0]}], indent=1))  # what json.dump writes: one array
    message = cli_error(capsys, [f"model={model_folder}", f"input={array}"])
    assert f"input={array} must be JSON Lines: one object a line" in message
    array.write_text(json.dumps({"text": SENTENCES[0]}) + "\n", encoding="utf-8-sig")  # as Windows Notepad saves
    main([f"model={model_folder}", f"input={array}"])
    assert json.loads(capsys.readouterr().out)["text"] == SENTENCES[0]
