"""Label Studio and doccano exports read as training data (through data.path), corpora written as Label Studio tasks
and read back unchanged, and pre-annotations that Label Studio's own converter reads."""

import json
import logging
from pathlib import Path

import pytest

from lit_ner.data.annotation import newest_annotation
from lit_ner.data.formats import read_conll
from lit_ner.data.preannotations import (
    Task, conll_to_label_studio, doccano_records, label_config, label_studio_predictions, read_tasks,
    task_score,
)  # fmt: skip
from lit_ner.data.sources import load_ner_dataset
from lit_ner.errors import ConfigError, DataError
from lit_ner.selection import task_order


def region(text: str, words: str, label: str, start: int | None = None) -> dict:
    """A Label Studio `labels` region over `words` (their first occurrence in `text`, or at `start`)."""
    start = text.index(words) if start is None else start
    value = {"start": start, "end": start + len(words), "text": words, "labels": [label]}
    return {"id": f"r{start}", "from_name": "label", "to_name": "text", "type": "labels", "value": value}


def annotation(id: int, *regions: dict, cancelled: bool = False, updated: str = "2024-05-01T10:00:00.000000Z") -> dict:
    return {"id": id, "result": list(regions), "was_cancelled": cancelled, "ground_truth": False,
            "created_at": "2024-05-01T09:00:00.000000Z", "updated_at": updated, "lead_time": 3.5}  # fmt: skip


def task(id: int, text: str, *annotations: dict, **data: object) -> dict:
    return {"id": id, "data": {"text": text, **data}, "annotations": list(annotations), "predictions": []}


def write_json(path: Path, value: object, lines: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(v) + "\n" for v in value) if lines else json.dumps(value, indent=2)
    path.write_text(text, encoding="utf-8")
    return path


def splits_of(folder: Path, records: list, suffix: str = ".json") -> Path:
    """`folder` with train and dev files that both hold `records` (JSON lines for a .jsonl suffix)."""
    for split in ("train", "dev"):
        write_json(folder / f"{split}{suffix}", records, lines=suffix == ".jsonl")
    return folder


def read(folder: Path, **settings: object) -> dict[str, list[tuple[list[str], list[str]]]]:
    """(words, tags) per split, read as data.path=<folder> reads them."""
    splits = load_ner_dataset(path=str(folder), **settings)
    return {name: list(zip(split["tokens"], split["tags"])) for name, split in splits.items()}


TEXT = "Alan Walker wrote it in New York."
EXPECTED = (["Alan", "Walker", "wrote", "it", "in", "New", "York", "."],
            ["B-PER", "I-PER", "O", "O", "O", "B-LOC", "I-LOC", "O"])  # fmt: skip


# ---- Label Studio JSON


def test_label_studio_folder_reads_the_newest_kept_annotation_and_counts_tasks_without_one(tmp_path, caplog) -> None:
    tasks = [
        # an older annotation, and a newer one that was cancelled: the older one counts
        task(1, TEXT, annotation(11, region(TEXT, "Alan Walker", "PER"), region(TEXT, "New York", "LOC")),
             annotation(12, region(TEXT, "Alan", "ORG"), cancelled=True, updated="2024-06-01T00:00:00Z")),
        task(2, "Mary Smith in Paris", annotation(21), annotation(22, region("Mary Smith in Paris", "Paris", "LOC")),
             annotation(23, region("Mary Smith in Paris", "Mary Smith", "PER"), updated="2024-04-01T00:00:00Z")),
        task(3, "Nobody labelled this one"),  # no annotation at all
        task(4, "Only a cancelled one", annotation(41, region("Only a cancelled one", "Only", "PER"), cancelled=True)),
    ]
    write_json(tmp_path / "train.json", tasks)
    write_json(tmp_path / "dev.json", tasks[:1])
    with caplog.at_level(logging.WARNING):
        splits = read(tmp_path)
    # task 2: annotations 21 and 22 share updated_at; the higher id (22) is the newer; 23 is older
    assert splits["train"] == [EXPECTED, (["Mary", "Smith", "in", "Paris"], ["O", "O", "O", "B-LOC"])]
    assert splits["validation"] == [EXPECTED]
    assert f"{tmp_path / 'train.json'}: skipped 2 tasks without an annotation" in caplog.text


def test_a_ground_truth_annotation_wins_over_newer_ones_and_epoch_times_are_read() -> None:
    newest, truth = {"id": 2, "result": [], "created_at": 1717236000}, {"id": 1, "result": [], "ground_truth": True}
    assert newest_annotation([truth, newest], "f:1") is truth
    older, newer = {"id": 1, "created_at": 1717236000}, {"id": 0, "created_at": 1717236001}
    assert newest_annotation([older, newer], "f:1") is newer  # older Label Studio's epoch seconds; time before id
    with pytest.raises(DataError, match="f:1: annotation updated_at='yesterday' is no ISO date"):
        newest_annotation([{"updated_at": "yesterday"}, {"updated_at": "2024-01-01"}], "f:1")


def test_span_inside_a_word_is_snapped_with_a_warning_or_refused(tmp_path: Path, caplog) -> None:
    text = "Walker's books sold in Berlin-Mitte"
    tasks = [task(7, text, annotation(1, region(text, "Walk", "PER"), region(text, "Berlin", "LOC")))]
    splits_of(tmp_path, tasks)
    with caplog.at_level(logging.WARNING):
        splits = read(tmp_path)
    # split_words keeps "Berlin-Mitte" one word and "'s" apart: "Walk" grows to "Walker", "Berlin" to "Berlin-Mitte"
    assert splits["train"] == [(["Walker", "'s", "books", "sold", "in", "Berlin-Mitte"],
                                ["B-PER", "O", "O", "O", "O", "B-LOC"])]  # fmt: skip
    assert "2 spans snapped outward to whole words" in caplog.text
    assert "(task 7): span [0:4] 'Walk' (PER) does not fall on word boundaries (the words: 'Walker')" in caplog.text
    with pytest.raises(DataError) as err:
        read(tmp_path, span_policy="refuse")
    message = str(err.value)
    assert str(tmp_path / "dev.json") in message and "(task 7)" in message and "[0:4] 'Walk'" in message
    assert "data.span_policy=snap" in message
    with pytest.raises(ConfigError, match="data.span_policy='cut'"):
        read(tmp_path, span_policy="cut")


def test_overlapping_spans_are_refused_naming_both_unless_a_policy_keeps_one(tmp_path: Path) -> None:
    text = "Bank of New York hires"
    spans = [region(text, "Bank of New York", "ORG"), region(text, "New York", "LOC")]
    splits_of(tmp_path, [task(5, text, annotation(1, *spans))])
    with pytest.raises(DataError) as err:
        read(tmp_path)
    message = str(err.value)
    assert f"{tmp_path / 'dev.json'}:2 (task 5)" in message
    assert "[0:16] 'Bank of New York' (ORG)" in message and "[8:16] 'New York' (LOC)" in message
    assert "data.overlap_policy=longest|first" in message
    assert read(tmp_path, overlap_policy="longest")["train"][0][1] == ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "O"]
    # spans that share a word only once snapped clash too: first keeps the one that starts first, longest the longer
    text = "New-York based"
    spans = [region(text, "New", "LOC"), region(text, "York based", "ORG")]
    splits_of(tmp_path, [task(6, text, annotation(1, *spans))])
    assert read(tmp_path, overlap_policy="first")["train"][0][1] == ["B-LOC", "O"]
    assert read(tmp_path, overlap_policy="longest")["train"][0][1] == ["B-ORG", "I-ORG"]


def test_spans_are_trimmed_and_duplicates_counted_once(tmp_path: Path, caplog) -> None:
    text = "see  New York  today"
    padded = {"id": "x", "type": "labels", "value": {"start": 3, "end": 14, "text": text[3:14], "labels": ["LOC"]}}
    splits_of(tmp_path, [task(1, text, annotation(1, padded, region(text, "New York", "LOC")))])
    with caplog.at_level(logging.WARNING):
        assert read(tmp_path)["train"] == [(["see", "New", "York", "today"], ["O", "B-LOC", "I-LOC", "O"])]
    assert "snapped" not in caplog.text  # whitespace is trimmed, not snapped


def test_the_text_field_is_the_one_string_field_else_text_else_the_setting(tmp_path: Path) -> None:
    one = {"id": 1, "data": {"body": TEXT, "n": 3}, "annotations": [annotation(1, region(TEXT, "New York", "LOC"))]}
    splits_of(tmp_path / "one", [one])
    assert read(tmp_path / "one")["train"][0][1] == ["O"] * 5 + ["B-LOC", "I-LOC", "O"]
    two = {"id": 2, "data": {"title": "A title", "body": TEXT}, "annotations": [annotation(1)]}
    splits_of(tmp_path / "two", [two])
    with pytest.raises(DataError, match=r"dev.json:2 \(task 2\): cannot tell the task's text among its string "
                                        r"fields \['title', 'body'\]; set data.text_field"):  # fmt: skip
        read(tmp_path / "two")
    assert read(tmp_path / "two", text_field="body")["train"][0][0] == EXPECTED[0]
    # a span whose text is not the text at its offsets points at the wrong field
    span = region(TEXT, "New York", "LOC")
    wrong = {"id": 3, "data": {"text": "A title", "body": TEXT}, "annotations": [annotation(1, span)]}
    splits_of(tmp_path / "three", [wrong])
    with pytest.raises(DataError, match=r"\(task 3\): span \[24:32\] 'New York' does not match the task text there"):
        read(tmp_path / "three")


def test_offsets_in_utf16_units_from_older_label_studio_are_recognised(tmp_path: Path) -> None:
    text = "😀 Anna in 🌍 Paris"
    start = len(text[: text.index("Paris")].encode("utf-16-le")) // 2  # JavaScript's index: two units per emoji
    old = {"type": "labels", "value": {"start": start, "end": start + 5, "text": "Paris", "labels": ["LOC"]}}
    splits_of(tmp_path, [task(1, text, annotation(1, old, region(text, "Anna", "PER", start=3)))])
    assert read(tmp_path)["train"] == [(["😀", "Anna", "in", "🌍", "Paris"], ["O", "B-PER", "O", "O", "B-LOC"])]


def test_a_label_studio_file_without_a_json_suffix_needs_the_format_named(tmp_path: Path) -> None:
    splits_of(tmp_path, [task(1, TEXT, annotation(1, region(TEXT, "New York", "LOC")))], ".txt")
    with pytest.raises(DataError):  # read as CoNLL by its suffix
        read(tmp_path)
    assert read(tmp_path, format="label-studio")["train"][0][1] == ["O"] * 5 + ["B-LOC", "I-LOC", "O"]


# ---- Label Studio JSON-MIN and doccano


def test_label_studio_min_keeps_the_newest_row_of_a_task_and_skips_tasks_without_one(tmp_path, caplog) -> None:
    def row(id: int, text: str, annotation_id: int | None, updated: str, *regions: dict) -> dict:
        found = {"label": [{k: v for k, v in r["value"].items()} for r in regions]} if regions else {}
        return {"text": text, "id": id, **found, "annotator": "ann@example.com", "annotation_id": annotation_id,
                "created_at": updated, "updated_at": updated, "lead_time": 2.0}  # fmt: skip

    rows = [
        row(1, TEXT, 11, "2024-05-01T10:00:00Z", region(TEXT, "Alan", "PER")),
        row(2, "Nothing here", 21, "2024-05-01T10:00:00Z"),  # annotated, no entity
        row(3, "Not yet labelled", None, None),
        row(1, TEXT, 12, "2024-05-02T10:00:00Z", region(TEXT, "Alan Walker", "PER"), region(TEXT, "New York", "LOC")),
    ]
    splits_of(tmp_path, rows)
    with caplog.at_level(logging.WARNING):
        assert read(tmp_path)["train"] == [EXPECTED, (["Nothing", "here"], ["O", "O"])]
    assert "skipped 1 tasks without an annotation" in caplog.text


@pytest.mark.parametrize("shape", ["label", "entities"])
def test_doccano_jsonl_in_both_label_shapes(tmp_path: Path, shape: str) -> None:
    spans = [(0, 11, "PER"), (24, 32, "LOC")]
    if shape == "label":
        lines = [{"id": 1, "text": TEXT, "label": [list(s) for s in spans]},
                 {"id": 2, "text": "No entity", "label": []}]  # fmt: skip
    else:
        entities = [{"id": i, "start_offset": s, "end_offset": e, "label": t} for i, (s, e, t) in enumerate(spans)]
        lines = [{"id": 1, "text": TEXT, "entities": entities, "relations": []},
                 {"id": 2, "text": "No entity", "entities": [], "relations": []}]  # fmt: skip
    splits_of(tmp_path, lines, ".jsonl")
    assert read(tmp_path)["train"] == [EXPECTED, (["No", "entity"], ["O", "O"])]
    splits_of(tmp_path, [{"text": "No entity", shape: []}], ".jsonl")  # a file of unlabelled lines is doccano too
    assert read(tmp_path)["train"] == [(["No", "entity"], ["O", "O"])]
    bad = [{"id": 9, "text": TEXT, "label": [[24, 99, "LOC"]]}]
    splits_of(tmp_path, bad, ".jsonl")
    with pytest.raises(DataError, match=r"dev.jsonl:1 \(task 9\): span offsets \[24:99\] are not within the text"):
        read(tmp_path)


# ---- Round trips: CoNLL -> Label Studio tasks -> words and tags


ROUND_TRIPS = {  # shared dataset: (folder inside it, token prefix)
    "conll2003": ("", None),
    "wikiann-en": ("", "en:"),
    "broad_twitter_corpus": ("train_dev_test_conll", None),
}


def write_label_studio_copy(corpus: Path, prefix: str | None, target: Path) -> None:
    for file in sorted(f for f in corpus.iterdir() if f.is_file() and f.name not in ("README.md", "LICENSE")):
        tokens, tags, _ = read_conll(file, token_prefix=prefix)
        tasks = [conll_to_label_studio(words, labels) for words, labels in zip(tokens, tags)]
        write_json(target / f"{file.name.removesuffix('.txt')}.json", tasks)


@pytest.mark.parametrize("name", sorted(ROUND_TRIPS))
def test_conll_to_label_studio_and_back_gives_the_same_words_and_tags(name: str, shared_dataset, tmp_path) -> None:
    folder, prefix = ROUND_TRIPS[name]
    corpus = shared_dataset(name) / folder
    write_label_studio_copy(corpus, prefix, tmp_path)
    conll = load_ner_dataset(path=str(corpus), token_prefix=prefix)
    label_studio = load_ner_dataset(path=str(tmp_path))
    assert sorted(label_studio) == sorted(conll) == ["test", "train", "validation"]
    for split in conll:
        assert label_studio[split]["tokens"] == conll[split]["tokens"], split
        assert label_studio[split]["tags"] == conll[split]["tags"], split


def test_words_the_pre_tokenizer_would_split_travel_as_data_tokens() -> None:
    plain = conll_to_label_studio(["Alan", "Walker", "wrote"], ["B-PER", "I-PER", "O"])
    assert plain["data"] == {"text": "Alan Walker wrote"}  # split_words gives these words back: no tokens needed
    value = plain["annotations"][0]["result"][0]["value"]
    assert value == {"start": 0, "end": 11, "text": "Alan Walker", "labels": ["PER"]}
    odd = conll_to_label_studio(["U.S.", "MH17 ", "", "@", "x"], ["B-LOC", "B-MISC", "O", "B-PER", "B-PER"])
    assert odd["data"] == {"text": "U.S. MH17   @ x", "tokens": ["U.S.", "MH17 ", "", "@", "x"]}
    spans = [r["value"] for r in odd["annotations"][0]["result"]]
    # each entity its own region, its whitespace left out; the two adjacent PER (BTC's "@ user") stay two
    assert [(v["text"], *v["labels"]) for v in spans] == [("U.S.", "LOC"), ("MH17", "MISC"), ("@", "PER"), ("x", "PER")]


def test_a_model_trained_from_a_label_studio_export_equals_the_one_trained_from_conll(
    shared_dataset, tiny_model: Path, tmp_path: Path, make_cfg
) -> None:
    from lit_ner.train import train

    tokens, tags, _ = read_conll(shared_dataset("conll2003") / "train.txt")
    splits = {"train": slice(0, 96), "dev": slice(96, 128)}
    for split, rows in splits.items():
        lines = ["".join(f"{t} {g}\n" for t, g in zip(s, g_)) for s, g_ in zip(tokens[rows], tags[rows])]
        (tmp_path / "conll").mkdir(exist_ok=True)
        (tmp_path / "conll" / f"{split}.txt").write_text("\n".join(lines), encoding="utf-8")
        tasks = [conll_to_label_studio(s, g) for s, g in zip(tokens[rows], tags[rows])]
        write_json(tmp_path / "label_studio" / f"{split}.json", tasks)
    weights = {}
    for source in ("conll", "label_studio"):
        cfg = make_cfg(tmp_path / f"run_{source}", tiny_model, tmp_path / f"cache_{source}", "data=local",
                       f"data.path={tmp_path / source}", "data.max_length=128", "test=false", size=None)  # fmt: skip
        result = train(cfg)
        weights[source] = (Path(result["export"]) / "model.safetensors").read_bytes()
    assert weights["label_studio"] == weights["conll"]


# ---- Pre-annotations out


def predicted_tasks(tmp_path: Path) -> list[Task]:
    tasks = [{"id": 1, "data": {"text": TEXT}}, {"text": "Mary Smith in Paris"},
             {"id": 3, "data": {"text": "No entity"}}]  # fmt: skip
    return read_tasks(write_json(tmp_path / "tasks.json", tasks))


ENTITIES = [
    [{"text": "Alan Walker", "type": "PER", "start": 0, "end": 11, "score": 0.98},
     {"text": "new york", "type": "LOC", "start": 24, "end": 32, "score": 0.61}],
    [{"text": "Mary Smith", "type": "PER", "start": 0, "end": 10, "score": 0.93}],
    [],
]  # fmt: skip


def test_read_tasks_takes_label_studio_tasks_and_flat_ones_as_label_studio_imports_them(tmp_path: Path) -> None:
    tasks = predicted_tasks(tmp_path)
    assert [t.text for t in tasks] == [TEXT, "Mary Smith in Paris", "No entity"]
    assert tasks[1].task == {"data": {"text": "Mary Smith in Paris"}}  # a flat task is its data
    write_json(tmp_path / "bad.json", [{"data": {"title": "x", "body": "y"}}])
    with pytest.raises(DataError, match=r"bad.json:2 \(record 1\): cannot tell the task's text"):
        read_tasks(tmp_path / "bad.json")
    assert read_tasks(tmp_path / "bad.json", text_field="body")[0].text == "y"


def test_task_score_is_the_lowest_confidence_and_sorting_puts_the_least_sure_first(tmp_path: Path) -> None:
    assert task_score(ENTITIES[0]) == 0.61
    assert task_score(ENTITIES[0], confidence=0.4) == 0.4  # a word the model was unsure of, entity or not
    assert task_score([], confidence=0.55) == 0.55 and task_score([]) == 1.0
    written = label_studio_predictions(predicted_tasks(tmp_path), ENTITIES, "conll-bert 2024-06-01",
                                       confidences=[0.7, 0.9, 0.2])  # fmt: skip
    assert [t["predictions"][0]["score"] for t in written] == [0.61, 0.9, 0.2]
    order = task_order("uncertainty", [t["predictions"][0]["score"] for t in written], None, seed=0)  # predict's sort=
    assert [written[i]["data"]["text"] for i in order] == ["No entity", TEXT, "Mary Smith in Paris"]


def test_label_studio_predictions_shape(tmp_path: Path) -> None:
    tasks = predicted_tasks(tmp_path)
    written = label_studio_predictions(tasks, ENTITIES, "conll-bert 2024-06-01", from_name="ner", to_name="body")
    assert written[0]["id"] == 1 and written[0]["data"] == {"text": TEXT}
    assert tasks[0].task.get("predictions") is None  # the tasks read are left as they were
    prediction = written[0]["predictions"][0]
    assert prediction["model_version"] == "conll-bert 2024-06-01" and prediction["score"] == 0.61
    assert prediction["result"][1] == {
        "id": "e1", "from_name": "ner", "to_name": "body", "type": "labels", "score": 0.61,
        "value": {"start": 24, "end": 32, "text": "New York", "labels": ["LOC"]},  # the task's text, not the model's
    }  # fmt: skip
    assert written[2]["predictions"][0]["result"] == []
    with pytest.raises(DataError, match=r"tasks.json:2 \(task 1\): predicted entity .* lies outside the text"):
        label_studio_predictions(tasks[:1], [[{"type": "PER", "start": 30, "end": 40, "score": 0.5}]], "v")


def test_doccano_records_of_predictions_read_back_as_training_data(tmp_path: Path) -> None:
    lines = doccano_records(predicted_tasks(tmp_path), ENTITIES)
    assert lines[0] == {"text": TEXT, "label": [[0, 11, "PER"], [24, 32, "LOC"]]}
    splits_of(tmp_path / "data", lines, ".jsonl")
    assert read(tmp_path / "data")["train"][0] == EXPECTED


def accepted(tasks: list[dict]) -> list[dict]:
    """What a Label Studio export holds once an annotator submits each task's prediction unchanged."""
    return [{**t, "annotations": [annotation(100 + n, *t["predictions"][0]["result"])]} for n, t in enumerate(tasks)]


def test_pre_annotations_pass_label_studio_converter_and_read_back_as_training_data(tmp_path: Path) -> None:
    converter = pytest.importorskip("label_studio_converter", reason="label-studio-converter is in the dev extra")
    from label_studio_converter.utils import parse_config

    config = label_config(["PER", "LOC", "ORG"])
    schema = parse_config(config)
    assert schema["label"]["to_name"] == ["text"] and schema["label"]["inputs"] == [{"type": "Text", "value": "text"}]
    written = label_studio_predictions(predicted_tasks(tmp_path), ENTITIES, "conll-bert 2024-06-01")
    for t in written:
        for r in t["predictions"][0]["result"]:
            assert r["from_name"] in schema and r["to_name"] in schema[r["from_name"]]["to_name"]
            assert r["value"]["labels"][0] in schema[r["from_name"]]["labels"]
    export = write_json(tmp_path / "export.json", [{"id": n, **t} for n, t in enumerate(accepted(written), 1)])
    tool = converter.Converter(config, project_dir=str(tmp_path))
    items = list(tool.iter_from_json_file(str(export)))
    assert [[(v["start"], v["end"], v["labels"]) for v in i["output"].get("label", [])] for i in items] == [
        [(e["start"], e["end"], [e["type"]]) for e in found] for found in ENTITIES
    ]
    assert all(v["type"] == "Labels" for i in items for v in i["output"].get("label", []))  # regions the config knows
    # the JSON export and the converter's own JSON-MIN export read back as the same training data
    tool.convert_to_json_min(str(export), str(tmp_path / "min"), is_dir=False)
    mary = (["Mary", "Smith", "in", "Paris"], ["B-PER", "I-PER", "O", "O"])
    expected = [EXPECTED, mary, (["No", "entity"], ["O", "O"])]
    for path in (export, tmp_path / "min" / "result.json"):
        splits = load_ner_dataset(path=str(path), validation_fraction=0.34)  # one file: validation carved from it
        rows = [r for s in ("train", "validation") for r in zip(splits[s]["tokens"], splits[s]["tags"])]
        assert sorted(rows) == sorted(expected), path


def test_settings_reach_the_reader_through_the_data_config(tmp_path: Path, tiny_model: Path) -> None:
    """data.span_policy, data.pretokenizer and the rest are DataModule settings: Hydra overrides reach the reader."""
    from lit_ner.app import compose_config, build

    tasks = [{"id": 1, "data": {"text": "Anna Smith wrote it."},
              "annotations": [{"result": [{"type": "labels", "value": {"start": 0, "end": 7, "labels": ["PER"]}}]}]}]
    folder = tmp_path / "ls"
    folder.mkdir()
    for name in ("train.json", "dev.json"):
        (folder / name).write_text(json.dumps(tasks * 4))
    def tags(*overrides: str) -> list[list[str]]:
        cfg = compose_config("train", [f"model.model_name_or_path={tiny_model}", "data=local", f"data.path={folder}",
                                       f"data.cache_dir={tmp_path / 'cache'}", *overrides])
        datamodule = build(cfg.data, _convert_="all")
        return datamodule.words_from_source()["train"]["tags"]

    assert tags()[0] == ["B-PER", "I-PER", "O", "O", "O"]  # "Smi" of "Smith": snapped to the word
    with pytest.raises(DataError, match="task 1"):
        tags("data.span_policy=refuse")
    assert tags("data.pretokenizer=whitespace")[0] == ["B-PER", "I-PER", "O", "O"]  # "it." is one word


@pytest.mark.parametrize("tool", ["label-studio", "doccano"])
def test_overlapping_spans_are_kept_as_nested_entities_with_the_outermost_as_tags(tmp_path: Path, tool: str) -> None:
    text = "Bank of New York hires in York"
    spans = [("Bank of New York", "ORG", 0), ("New York", "LOC", 8), ("York", "LOC", 26)]
    if tool == "label-studio":
        splits_of(tmp_path, [task(5, text, annotation(1, *(region(text, w, t, at) for w, t, at in spans)))])
    else:
        line = {"text": text, "label": [[at, at + len(w), t] for w, t, at in spans]}
        splits_of(tmp_path, [line], suffix=".jsonl")
    train = load_ner_dataset(path=str(tmp_path), overlap_policy="keep")["train"]
    assert train[0]["tags"] == ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "O", "B-LOC"]  # the outermost
    assert sorted((e["type"], e["start"], e["end"]) for e in train[0]["entities"]) == [
        ("LOC", 2, 4), ("LOC", 6, 7), ("ORG", 0, 4)]  # every span, in words, end exclusive
