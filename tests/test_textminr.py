"""TextminR prompt/response rows become AUTHOR/DATE/O words without the original conversion's bugs."""

import json
import logging
from pathlib import Path

import pytest

from lit_ner.data.sources import load_ner_dataset
from lit_ner.data.textminr import convert_rows, parse_response, tag_prompt
from lit_ner.errors import DataError


def tagged(prompt: str, author: str | None = None, date: str | None = None) -> list[tuple[str, str]]:
    tokens, tags, not_found = tag_prompt(prompt, {"author": author, "date": date})
    assert not_found == []
    return [(token, tag) for token, tag in zip(tokens, tags) if tag != "O"]


def row(prompt: str, author: str = "N/A", date: str = "N/A", as_string: bool = True) -> dict:
    response = {"author": author, "date": date}
    return {"prompt": prompt, "response": json.dumps(response) if as_string else response}


def test_response_as_json_string_or_object_with_na_as_missing() -> None:
    assert parse_response('{"author": "N/A", "date": " 2015"}', "f:1") == {"author": None, "date": "2015"}
    assert parse_response({"author": "Ann Lee", "date": 1937}, "f:1") == {"author": "Ann Lee", "date": "1937"}
    with pytest.raises(DataError, match="f:3: the response is not valid JSON"):
        parse_response("{author: Ann}", "f:3")
    with pytest.raises(DataError, match="f:4: the response must be an object with 'author' and 'date'"):
        parse_response({"author": "Ann"}, "f:4")


def test_missing_date_never_tags_a_standalone_a() -> None:
    # The original substring test made "A" (inside "N/A") the DATE of every such row.
    assert tagged("A novel by Scott English about the sea.", author="Scott English") == [
        ("Scott", "AUTHOR"),
        ("English", "AUTHOR"),
    ]


def test_every_word_of_a_multi_word_date_is_tagged() -> None:
    assert tagged("Released on 8 November 1974, it sold well.", date="8 November 1974") == [
        ("8", "DATE"),
        ("November", "DATE"),
        ("1974", "DATE"),
    ]


def test_only_the_author_occurrence_is_tagged_not_words_that_also_occur_in_the_name() -> None:
    # The original tagged any prompt token found among the author's tokens ("English" the language here).
    got = tagged("An English essay by Scott English, 2015.", author="Scott English", date="2015")
    assert got == [("Scott", "AUTHOR"), ("English", "AUTHOR"), ("2015", "DATE")]


def test_case_insensitive_fallback_and_whole_words_only() -> None:
    assert tagged("poems by ANN LEE in 2001", author="Ann Lee", date="2001") == [
        ("ANN", "AUTHOR"),
        ("LEE", "AUTHOR"),
        ("2001", "DATE"),
    ]
    tokens, tags, not_found = tag_prompt("The Annual report of 19991", {"author": "Ann", "date": "1999"})
    assert not_found == ["author", "date"] and set(tags) == {"O"}


def test_initials_and_possessives_follow_the_project_word_splitter() -> None:
    got = tagged("J.R.R. Tolkien's novel", author="J.R.R. Tolkien")
    assert [token for token, _ in got] == ["J", ".", "R", ".", "R", ".", "Tolkien"]
    tokens, tags, _ = tag_prompt("Alan Walker’s O’Brien-like novel", {"author": "Alan Walker", "date": None})
    assert list(zip(tokens, tags)) == [
        ("Alan", "AUTHOR"), ("Walker", "AUTHOR"), ("’s", "O"), ("O’Brien-like", "O"), ("novel", "O")
    ]  # fmt: skip


def test_rows_whose_author_is_not_in_the_prompt_are_skipped_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    rows = [
        ("t.jsonl:1", row("A novel by Ann Lee.", author="Ann Lee")),
        ("t.jsonl:2", row("Terrorist attacks shook the city in 2001.", author="terrorists", date="2001")),
        ("t.jsonl:3", row("Written in the 21st century.", date="2000", as_string=False)),
    ]
    with caplog.at_level(logging.WARNING):
        tokens, tags = convert_rows(rows)
    assert tokens == [["A", "novel", "by", "Ann", "Lee", "."]]
    assert tags == [["O", "O", "O", "AUTHOR", "AUTHOR", "O"]]
    assert "kept 1 of 3 rows" in caplog.text and "(author: 1, date: 1)" in caplog.text
    assert "t.jsonl:2 (author not found); t.jsonl:3 (date not found)" in caplog.text


def test_folder_of_textminr_jsonl_is_detected(tmp_path: Path) -> None:
    rows = [row(f"Essay {i} by Ann Lee in {2000 + i}.", author="Ann Lee", date=str(2000 + i)) for i in range(10)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "test.jsonl").write_text(json.dumps(row("A poem, undated.", as_string=False)) + "\n")
    (tmp_path / "ner_data_augmented.jsonl").write_text("not picked: not a split name\n")
    dd = load_ner_dataset(path=str(tmp_path))
    assert {split: len(ds) for split, ds in dd.items()} == {"train": 9, "validation": 1, "test": 1}
    assert dd["test"][0] == {"tokens": ["A", "poem", ",", "undated", "."], "tags": ["O"] * 5, "document": 0}
    labels = {tag for split in dd.values() for tags in split["tags"] for tag in tags}
    assert labels == {"O", "AUTHOR", "DATE"}


def test_textminr_format_can_be_forced_for_a_json_list(tmp_path: Path) -> None:
    file = tmp_path / "rows.json"
    file.write_text(json.dumps([row("Notes by Bo Li.", author="Bo Li")] * 4))
    dd = load_ner_dataset(path=str(file), format="textminr", validation_fraction=0.25)
    assert dd["train"][0]["tags"] == ["O", "O", "AUTHOR", "AUTHOR", "O"]
    with pytest.raises(DataError, match="rows.json:1: .*data.format=textminr"):
        load_ner_dataset(path=str(file), format="json")


def test_real_textminr_folder(shared_dataset) -> None:
    dd = load_ner_dataset(path=str(shared_dataset("textminr")))
    # train.jsonl: 6361 rows, 207 skipped (dates such as "2000" for "the 2000s"); test.jsonl: 80 rows, 5 skipped.
    assert {split: len(ds) for split, ds in dd.items()} == {"train": 5538, "validation": 616, "test": 75}
    first = dict(zip(dd["test"][0]["tokens"], dd["test"][0]["tags"]))
    assert first["1974"] == "DATE" and "AUTHOR" not in first.values()
