"""load_ner_dataset on small files written here (every format and quirk), and on the shared real copies."""

import json
import socket
from pathlib import Path

import datasets
import huggingface_hub.constants
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from lit_ner.data.formats import FEATURES, read_conll
from lit_ner.data.sources import load_ner_dataset
from lit_ner.errors import ConfigError, DataError

BTC_SECTIONS = {"train": ["a.conll", "b.conll", "e.conll", "g.conll"], "validation": ["h.conll"], "test": ["f.conll"]}


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def sentences(n: int, tag: str = "O") -> str:
    return "".join(f"w{i}a {tag}\nw{i}b {tag}\n\n" for i in range(n))


# ---- CoNLL columns


def test_conll_four_columns_tag_in_last_column_and_docstart_skipped(tmp_path: Path) -> None:
    # -DOCSTART- once followed by a blank line (CoNLL-2003) and once directly by a sentence.
    text = (
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
        "-DOCSTART- -X- -X- O\nPeter NNP B-NP B-PER\n"
    )
    tokens, tags, _ = read_conll(write(tmp_path, "x.txt", text))
    assert tokens == [["EU", "rejects"], ["Peter"]]
    assert tags == [["B-ORG", "O"], ["B-PER"]]


def test_conll_tag_column_picks_another_column(tmp_path: Path) -> None:
    tokens, tags, _ = read_conll(write(tmp_path, "x.txt", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n"), tag_column=1)
    assert tags == [["NNP", "VBZ"]]


def test_conll_tab_file_keeps_empty_tokens_and_spaces_inside_tokens(tmp_path: Path) -> None:
    # BTC: "\tO" is an empty token, and a line holding one space separates two tweets.
    text = "New York\tB-LOC\n\tO\nhi\tO\n \n\tO\nthere\tO\n"
    tokens, tags, _ = read_conll(write(tmp_path, "x.conll", text))
    assert tokens == [["New York", "", "hi"], ["", "there"]]
    assert tags == [["B-LOC", "O", "O"], ["O", "O"]]


def test_conll_whitespace_only_lines_separate_sentences_in_space_files(tmp_path: Path) -> None:
    tokens, *_ = read_conll(write(tmp_path, "x.txt", "a O\n   \nb O\n \nc O\n\n\n"))
    assert tokens == [["a"], ["b"], ["c"]]


def test_conll_crlf_and_unicode_line_separators_inside_tokens(tmp_path: Path) -> None:
    # str.splitlines() would also break on \u2028 and \x85, which occur inside tweets.
    tokens, tags, _ = read_conll(write(tmp_path, "x.conll", "a\u2028b\tO\r\nc\x85\tB-PER\r\n\r\n"))
    assert tokens == [["a\u2028b", "c\x85"]]
    assert tags == [["O", "B-PER"]]


def test_conll_token_prefix_stripped_only_where_present(tmp_path: Path) -> None:
    file = write(tmp_path, "train", "en:R.H.\tB-ORG\nen:Saunders\tI-ORG\nplain\tO\n")
    tokens, *_ = read_conll(file, token_prefix="en:")
    assert tokens == [["R.H.", "Saunders", "plain"]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a X O\nb O\n", "x.txt:2: 2 columns where the first token line has 3"),
        ("a\tO\nb\tO\tO\n", "x.txt:2: 3 columns"),
        ("a\tO\nb\t\n", "x.txt:2: empty tag"),
        ("a\nb\n", "x.txt:1: one column only"),
        ("\n\n-DOCSTART- O\n\n", "no sentences"),
    ],
)
def test_conll_malformed_lines_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_conll(write(tmp_path, "x.txt", text))


def test_conll_tag_column_that_is_the_token_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.tag_column=0"):
        read_conll(write(tmp_path, "x.txt", "a O\n"), tag_column=0)


def test_non_utf8_file_names_file_line_and_byte(tmp_path: Path) -> None:
    write(tmp_path, "train.txt", b"ok O\n\ncaf\xe9 O\n")
    with pytest.raises(DataError, match=r"train.txt:3: not UTF-8 \(byte offset 9"):
        load_ner_dataset(path=str(tmp_path))


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="train.txt: the file is empty"):
        load_ner_dataset(path=str(write(tmp_path, "train.txt", "\n\n")))


# ---- JSON lines and JSON lists


def test_jsonl_string_tags_and_ner_tags_field(tmp_path: Path) -> None:
    rows = [{"tokens": ["Ann", "ran"], "ner_tags": ["B-PER", "O"], "id": 1}] * 20
    write(tmp_path, "train.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    dd = load_ner_dataset(path=str(tmp_path))
    assert set(dd) == {"train", "validation"} and len(dd["train"]) + len(dd["validation"]) == 20
    assert dd["train"].features == FEATURES
    assert dd["train"][0] == {"tokens": ["Ann", "ran"], "tags": ["B-PER", "O"], "document": 14}  # its row in the file


def test_json_list_with_integer_ids_and_label_names(tmp_path: Path) -> None:
    rows = [{"tokens": ["Ann", "ran"], "tags": [1, 0]}, {"tokens": ["Bo"], "tags": [1]}]
    write(tmp_path, "train.json", json.dumps(rows, indent=2))
    write(tmp_path, "test.json", json.dumps(rows))
    dd = load_ner_dataset(path=str(tmp_path), label_names=["O", "B-PER"], validation_fraction=0.5)
    assert dd["test"]["tags"] == [["B-PER", "O"], ["B-PER"]]


def test_json_integer_ids_need_label_names_and_must_be_in_range(tmp_path: Path) -> None:
    write(tmp_path, "train.jsonl", '{"tokens": ["a"], "tags": [0]}\n{"tokens": ["a"], "tags": [2]}\n')
    with pytest.raises(DataError, match="train.jsonl:1: .*data.label_names"):
        load_ner_dataset(path=str(tmp_path))
    with pytest.raises(DataError, match="train.jsonl:2: tag ids \\[2\\] out of range"):
        load_ner_dataset(path=str(tmp_path), label_names=["O", "B-PER"])


def test_json_length_mismatch_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "train.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n\n{"tokens": ["a", "b"], "tags": ["O"]}\n')
    with pytest.raises(DataError, match="train.jsonl:3: 2 tokens but 1 tags"):
        load_ner_dataset(path=str(tmp_path))
    rows = [{"tokens": ["a"], "tags": ["O"]}, {"tokens": ["a", "b"], "tags": ["O"]}]
    write(tmp_path, "train.jsonl", json.dumps(rows, indent=1))  # a list: each object spans 8 lines
    with pytest.raises(DataError, match="train.jsonl:10: 2 tokens but 1 tags"):
        load_ner_dataset(path=str(tmp_path))


def test_json_fields_are_configurable(tmp_path: Path) -> None:
    write(tmp_path, "data.jsonl", '{"words": ["a"], "labels": ["O"]}\n' * 4)
    with pytest.raises(DataError, match="data.jsonl:1: .*data.tokens_field"):
        load_ner_dataset(path=str(tmp_path / "data.jsonl"))
    dd = load_ner_dataset(path=str(tmp_path / "data.jsonl"), tokens_field="words", tags_field="labels")
    assert dd["train"][0] == {"tokens": ["a"], "tags": ["O"], "document": 2}


# ---- Folders, split names, data_files


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["train.txt", "valid.txt", "test.txt"], ["train.txt", "valid.txt", "test.txt"]),  # CoNLL-2003
        (["train", "dev", "test"], ["train", "dev", "test"]),  # WikiANN: no extension
        (["sub/btc.train", "sub/btc.dev", "sub/btc.test"], ["btc.train", "btc.dev", "btc.test"]),  # BTC, nested
        (["eng.train", "eng.testa", "eng.testb"], ["eng.train", "eng.testa", "eng.testb"]),
        (["training.iob", "validation.bio", "test.tsv"], ["training.iob", "validation.bio", "test.tsv"]),
    ],
)
def test_split_files_found_by_usual_names(tmp_path: Path, names: list[str], expected: list[str]) -> None:
    for i, name in enumerate(names):
        write(tmp_path, name, sentences(i + 2))
    write(tmp_path, "README.md", "# not data\n")
    write(tmp_path, "LICENSE", "not data\n")
    dd = load_ner_dataset(path=str(tmp_path))
    assert list(dd) == ["train", "validation", "test"]
    assert [len(dd[split]) for split in dd] == [2, 3, 4]


def test_missing_train_split_lists_files_and_the_key_to_set(tmp_path: Path) -> None:
    write(tmp_path, "a.conll", sentences(2))
    write(tmp_path, "dev.txt", sentences(2))
    with pytest.raises(DataError, match=r"no train split .*a.conll.*dev.txt.*data.data_files"):
        load_ner_dataset(path=str(tmp_path))


def test_train_files_in_two_folders_are_ambiguous(tmp_path: Path) -> None:
    write(tmp_path, "conll/train.txt", sentences(2))
    write(tmp_path, "wikiann/train", sentences(2))
    with pytest.raises(DataError, match="several folders .* data.data_files"):
        load_ner_dataset(path=str(tmp_path))


def test_data_files_globs_searched_recursively_with_split_aliases(tmp_path: Path) -> None:
    for name, n in {"a.conll": 1, "b.conll": 2, "h.conll": 3, "f.conll": 4}.items():
        write(tmp_path, f"sections/{name}", sentences(n))
    files = {"train": ["a.conll", "b.*"], "dev": ["h.conll"], "testb": "f.conll"}
    dd = load_ner_dataset(path=str(tmp_path), data_files=files)
    assert [len(dd[split]) for split in dd] == [3, 3, 4]
    assert dd["train"]["tokens"][0] == ["w0a", "w0b"]  # a.conll first, in the order given


def test_data_files_errors(tmp_path: Path) -> None:
    write(tmp_path, "train.txt", sentences(2))
    with pytest.raises(DataError, match="data.data_files.test: no file .* matches 'nope.txt'"):
        load_ner_dataset(path=str(tmp_path), data_files={"train": ["train.txt"], "test": ["nope.txt"]})
    with pytest.raises(ConfigError, match="data.data_files.extra: unknown split"):
        load_ner_dataset(path=str(tmp_path), data_files={"train": ["train.txt"], "extra": ["train.txt"]})


def test_single_file_is_train_with_carved_validation_and_no_test(tmp_path: Path, caplog) -> None:
    dd = load_ner_dataset(path=str(write(tmp_path, "mine.conll", sentences(10))), validation_fraction=0.2)
    assert list(dd) == ["train", "validation"]
    assert (len(dd["train"]), len(dd["validation"])) == (8, 2)
    assert "no test split" in caplog.text


def test_validation_carving_is_deterministic_by_seed(tmp_path: Path) -> None:
    file = str(write(tmp_path, "train.txt", sentences(50)))
    first, again = load_ner_dataset(path=file, seed=1), load_ner_dataset(path=file, seed=1)
    other = load_ner_dataset(path=file, seed=2)
    assert first["validation"]["tokens"] == again["validation"]["tokens"]
    assert first["validation"]["tokens"] != other["validation"]["tokens"]
    carved = {tuple(t) for t in first["validation"]["tokens"]}
    assert len(carved) == 5 and carved.isdisjoint(tuple(t) for t in first["train"]["tokens"])


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.format"):
        load_ner_dataset(path=str(tmp_path), format="xml")
    with pytest.raises(ConfigError, match="data.path=.* does not exist"):
        load_ner_dataset(path=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="data.path=<folder or file> or data.hub_name"):
        load_ner_dataset()


# ---- Arrow sources: save_to_disk folders and the hub (both map ClassLabel ids to names)


def classlabel_dataset() -> DatasetDict:
    features = Features(
        {"id": Value("string"), "tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=["O", "B-PER"]))}
    )
    rows = {"id": ["1", "2", "3"], "tokens": [["Ann", "ran"], ["Bo"], []], "ner_tags": [[1, 0], [1], []]}
    split = Dataset.from_dict(rows, features=features)
    return DatasetDict({"train": split, "dev": split, "test": split, "unlabeled": split})


def test_save_to_disk_folder_maps_class_labels_and_drops_extra_columns(tmp_path: Path) -> None:
    classlabel_dataset().save_to_disk(str(tmp_path / "saved"))
    dd = load_ner_dataset(path=str(tmp_path / "saved"))
    assert list(dd) == ["train", "validation", "test"]
    assert dd["validation"].features == FEATURES
    assert dd["validation"][:] == {
        "tokens": [["Ann", "ran"], ["Bo"]], "tags": [["B-PER", "O"], ["B-PER"]], "document": [0, 1]
    }


@pytest.mark.parametrize(
    "layout", [["data/train-00000-of-00001.parquet", "data/validation-00000-of-00001.parquet", "data/test.parquet"],
               ["en/train/0000.parquet", "en/validation/0000.parquet", "en/test/0000.parquet"]],
    ids=["named-files", "split-folders"],
)  # fmt: skip
def test_parquet_export_of_a_hub_dataset_keeps_label_names(tmp_path: Path, layout: list[str]) -> None:
    for name, (_, split) in zip(layout, classlabel_dataset().items(), strict=False):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        split.to_parquet(str(tmp_path / name))
    write(tmp_path, "README.md", "# a dataset card, not data")
    dd = load_ner_dataset(path=str(tmp_path))
    assert list(dd) == ["train", "validation", "test"] and dd["train"].features == FEATURES
    assert dd["validation"][:] == {
        "tokens": [["Ann", "ran"], ["Bo"]], "tags": [["B-PER", "O"], ["B-PER"]], "document": [0, 1]
    }


def test_only_parquet_files_take_their_split_from_the_folder_name(tmp_path: Path) -> None:
    write(tmp_path, "train.txt", sentences(10))
    write(tmp_path, "dev.txt", sentences(2))
    write(tmp_path, "train/labels.txt", "O\nB-PER\n")  # beside the data, not data: one column, no split name
    write(tmp_path, "train/._train.parquet", b"\x00\x05macOS resource fork")  # hidden: never read
    dd = load_ner_dataset(path=str(tmp_path))
    assert {split: len(ds) for split, ds in dd.items()} == {"train": 10, "validation": 2}


def test_parquet_errors_name_the_file(tmp_path: Path) -> None:
    write(tmp_path, "train.parquet", b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=r"train.parquet: not a readable parquet file"):
        load_ner_dataset(path=str(tmp_path))
    Dataset.from_dict({"tokens": [], "tags": [], "document": []}, features=FEATURES).to_parquet(str(tmp_path / "train.parquet"))
    with pytest.raises(DataError, match=r"train.parquet: the file is empty"):
        load_ner_dataset(path=str(tmp_path))
    Dataset.from_dict({"tokens": [["a"]], "labels": [["O"]]}).to_parquet(str(tmp_path / "train.parquet"))
    missing = r"no column 'tags or ner_tags' \(columns: \['tokens', 'labels'\]\); set data.tags_field"
    with pytest.raises(DataError, match=missing):
        load_ner_dataset(path=str(tmp_path))


def test_hub_dataset_is_mapped_like_a_saved_one(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kw: calls.append((args, kw)) or classlabel_dataset())
    dd = load_ner_dataset(hub_name="someone/ner", hub_config="en", hub_revision="refs/convert/parquet")
    assert calls == [(("someone/ner", "en"), {"revision": "refs/convert/parquet"})]
    assert dd["test"]["tags"] == [["B-PER", "O"], ["B-PER"]]  # the empty example is dropped


def test_local_path_overrides_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **kw: pytest.fail("the hub must not be used"))
    dd = load_ner_dataset(path=str(write(tmp_path, "train.txt", sentences(10))), hub_name="unimelb-nlp/wikiann")
    assert len(dd["train"]) == 9


def test_hub_offline_is_one_clear_error_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Both libraries read HF_HUB_OFFLINE at import time, so the module constants are patched too.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")  # no cached copy to fall back on
    attempts = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, *a: attempts.append(a) or pytest.fail("network"))
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **kw: attempts.append(a) or pytest.fail("network"))
    with pytest.raises(DataError) as err:
        load_ner_dataset(hub_name="unimelb-nlp/wikiann", hub_config="en")
    message = str(err.value)
    assert "Hub is unreachable for dataset unimelb-nlp/wikiann (en)" in message
    assert "run with data.path=<folder or file> to use local copies" in message
    assert attempts == []


# ---- The shared real copies: counts from their READMEs


def test_real_conll2003(shared_dataset) -> None:
    dd = load_ner_dataset(path=str(shared_dataset("conll2003")))
    assert {split: len(ds) for split, ds in dd.items()} == {"train": 14041, "validation": 3250, "test": 3453}
    assert sum(map(len, dd["train"]["tokens"])) == 203621
    assert dd["train"][0]["tokens"][:2] == ["EU", "rejects"]


def test_real_wikiann_en_with_prefix_stripped(shared_dataset) -> None:
    dd = load_ner_dataset(path=str(shared_dataset("wikiann-en")), token_prefix="en:")
    assert {split: len(ds) for split, ds in dd.items()} == {"train": 20000, "validation": 10000, "test": 10000}
    assert dd["train"][0]["tokens"][:2] == ["R.H.", "Saunders"]
    assert not any(t.startswith("en:") for split in dd.values() for tokens in split["tokens"] for t in tokens)


def test_real_btc_hf_sections_keep_empty_tokens(shared_dataset) -> None:
    dd = load_ner_dataset(path=str(shared_dataset("broad_twitter_corpus")), data_files=BTC_SECTIONS)
    assert {split: len(ds) for split, ds in dd.items()} == {"train": 5338, "validation": 2001, "test": 2001}
    empty = {split: sum(t == "" for tokens in ds["tokens"] for t in tokens) for split, ds in dd.items()}
    assert empty == {"train": 0, "validation": 3, "test": 2}  # H has 3, F has 2
    assert sum(map(len, dd["test"]["tokens"])) == 35428


def test_real_btc_repository_split_files_found_in_subfolder(shared_dataset) -> None:
    dd = load_ner_dataset(path=str(shared_dataset("broad_twitter_corpus")))
    assert {split: len(ds) for split, ds in dd.items()} == {"train": 6338, "validation": 1001, "test": 2001}


# ---- Streaming: a corpus larger than memory is read into Arrow files a sentence at a time


@pytest.mark.parametrize(
    "name, options",
    [
        ("conll2003", {}),
        ("wikiann-en", {"token_prefix": "en:"}),
        ("broad_twitter_corpus", {"data_files": BTC_SECTIONS}),
        ("broad_twitter_corpus/train_dev_test_conll", {}),
    ],
)
def test_the_streamed_reader_gives_the_dataset_read_whole(name: str, options: dict, shared_dataset, tmp_path: Path) -> None:
    path = shared_dataset(name.split("/")[0]) / "/".join(name.split("/")[1:])
    whole = load_ner_dataset(path=str(path), **options)
    streamed = load_ner_dataset(path=str(path), scratch=tmp_path, **options)
    assert list(streamed) == list(whole)
    for split in whole:
        assert streamed[split].cache_files  # on disk, memory-mapped: not built in memory
        assert streamed[split].features == whole[split].features
        assert streamed[split].to_dict() == whole[split].to_dict(), split


def test_streamed_errors_still_name_the_file_and_line(tmp_path: Path) -> None:
    file = write(tmp_path / "data", "train.txt", "a\tO\nb\tO\n\nc\tO\nd O\n")
    with pytest.raises(DataError, match=r"train.txt:5: 1 columns where the first token line has 2"):
        load_ner_dataset(path=str(file.parent), scratch=tmp_path / "scratch")
    write(tmp_path / "data", "train.txt", b"a O\n\nb O\n\xe9t\xe9 O\n")
    with pytest.raises(DataError, match=r"train.txt:4: not UTF-8"):
        load_ner_dataset(path=str(file.parent), scratch=tmp_path / "scratch")


# ---- Nested entities: JSON lines of words with word-offset spans


def test_jsonl_with_genia_entity_mentions_keeps_every_entity_and_tags_the_outermost(tmp_path: Path) -> None:
    record = {"tokens": ["IL-2", "gene", "expression", "in", "T", "cells"], "doc_id": "MEDLINE:1", "sent_id": "1",
              "entity_mentions": [{"start": 0, "end": 2, "entity_type": "DNA", "text": "IL-2 gene"},
                                  {"start": 0, "end": 1, "entity_type": "protein", "text": "IL-2"},
                                  {"start": 4, "end": 6, "entity_type": "cell_type", "text": "T cells"}]}  # fmt: skip
    write(tmp_path, "train.jsonl", json.dumps(record) + "\n" + json.dumps({**record, "entity_mentions": []}) + "\n")
    train = load_ner_dataset(path=str(tmp_path), validation_fraction=0.5, seed=0)
    rows = {tuple(r["tokens"]) + (len(r["entities"]),): r for split in train.values() for r in split}
    nested = next(r for key, r in rows.items() if key[-1] == 3)
    assert nested["tags"] == ["B-DNA", "I-DNA", "O", "O", "B-cell_type", "I-cell_type"]
    assert [(e["type"], e["start"], e["end"]) for e in nested["entities"]] == [
        ("DNA", 0, 2), ("protein", 0, 1), ("cell_type", 4, 6)]


def test_jsonl_with_entities_and_with_tags_in_one_corpus_all_keep_spans(tmp_path: Path) -> None:
    nested = {"tokens": ["New", "York", "Bank"], "entities": [{"start": 0, "end": 3, "type": "ORG"},
                                                            {"start": 0, "end": 2, "type": "LOC"}]}  # fmt: skip
    flat = {"tokens": ["Ann", "Lee"], "tags": ["B-PER", "I-PER"]}
    write(tmp_path, "train.jsonl", json.dumps(nested) + "\n" + json.dumps(flat) + "\n")
    write(tmp_path, "dev.txt", "Bob B-PER\nsaid O\n")  # a flat split beside a nested one
    splits = load_ner_dataset(path=str(tmp_path))
    assert [(e["type"], e["start"], e["end"]) for e in splits["train"][1]["entities"]] == [("PER", 0, 2)]
    assert splits["validation"][0]["entities"] == [{"start": 0, "end": 1, "type": "PER"}]
    assert splits["train"][0]["tags"] == ["B-ORG", "I-ORG", "I-ORG"]


@pytest.mark.parametrize(("entity", "message"), [
    ({"start": 2, "end": 5, "type": "X"}, "within the sentence's 3 words"),
    ({"start": 1, "end": 1, "type": "X"}, "end exclusive"),
    ({"start": "0", "end": 1, "type": "X"}, "word offsets"),
    ({"start": 0, "end": 1}, "needs a type"),
    ({"start": 0, "end": 1, "type": " X"}, "no spaces around it"),
])  # fmt: skip
def test_bad_entity_spans_name_file_and_line(tmp_path: Path, entity: dict, message: str) -> None:
    good = {"tokens": ["a", "b", "c"], "entities": []}
    write(tmp_path, "train.jsonl", json.dumps(good) + "\n" + json.dumps({**good, "entities": [entity]}) + "\n")
    with pytest.raises(DataError, match=rf"train.jsonl:2: entity .*{message}"):
        load_ner_dataset(path=str(tmp_path))


def test_a_flat_source_has_no_entities_column(tmp_path: Path) -> None:
    write(tmp_path, "train.txt", sentences(4, "B-PER"))
    assert all("entities" not in split.column_names for split in load_ner_dataset(path=str(tmp_path)).values())


def test_real_genia_nested(shared_dataset) -> None:
    splits = load_ner_dataset(path=str(shared_dataset("genia-nested")))
    from lit_ner.data.schemes import nested_count

    entities = [[(e["type"], e["start"], e["end"]) for e in s] for s in splits["validation"]["entities"]]
    assert len(splits["validation"]) == 350 and sum(map(len, entities)) == 954  # dev.jsonl (the README's counts)
    train = [[(e["type"], e["start"], e["end"]) for e in s] for s in splits["train"]["entities"]]
    assert len(splits["train"]) == 1415 and sum(map(len, train)) == 3760 and sum(map(nested_count, train)) >= 385
