"""How NER files are parsed: CoNLL column files, JSON lines (or a JSON list), parquet files (a Hub dataset's
parquet export), save_to_disk folders, TextminR rows and Label Studio / doccano exports (`lit_ner.data.annotation`),
each into `tokens`, `tags` (tag strings) and `document` (the sentence's document in its split: -DOCSTART- blocks, a
JSON `document` field; else each sentence its own). Which file is which split, and where the splits come from, is
`lit_ner.data.sources`."""

import json
import re
from collections.abc import Iterator, Sequence
from itertools import accumulate
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from lit_ner.data import annotation, textminr
from lit_ner.errors import ConfigError, DataError

FORMATS = ("auto", "conll", "json", "disk", "textminr", *annotation.FORMATS)
FEATURES = Features({"tokens": List(Value("string")), "tags": List(Value("string")), "document": Value("int64")})
DOCSTART = "-DOCSTART-"  # CoNLL's document marker: a line in column files, a one-token row in some Hub exports
_JSON_SUFFIXES = {".json", ".jsonl"}
DATA_SUFFIXES = {".txt", ".conll", ".tsv", ".iob", ".bio", ".parquet"} | _JSON_SUFFIXES  # what a data file may end in
_DEFAULT_TAG_FIELDS = ("tags", "ner_tags")
_LIST_GAP, _LINES_GAP = re.compile(r"[\s,]*"), re.compile(r"\s*")  # between JSON records


@dataclass(frozen=True)
class FormatOptions:
    """The data.* settings that say how to read a file or an Arrow dataset."""

    format: str
    tag_column: int
    token_prefix: str | None
    tokens_field: str
    tags_field: str | None
    label_names: list[str] | None
    spans: annotation.SpanOptions = annotation.SpanOptions()  # Label Studio and doccano: character spans to words


# ---- save_to_disk folders and Hub datasets: Arrow datasets whose columns are renamed and whose tag ids are named


def is_saved_dataset(path: Path, format: str) -> bool:
    """Whether `path` is read as a save_to_disk folder: data.format=disk, or the files save_to_disk writes."""
    return format == "disk" or (path / "dataset_dict.json").exists() or (path / "state.json").exists()


def read_saved_dataset(path: Path) -> Dataset | DatasetDict:
    try:
        return datasets.load_from_disk(str(path))
    except FileNotFoundError as err:
        raise DataError(f"{path} is not a save_to_disk folder ({err}); set data.format=auto") from None


def to_tokens_tags(ds: Dataset, source: str, opts: FormatOptions) -> Dataset:
    tags_field = opts.tags_field or next((f for f in _DEFAULT_TAG_FIELDS if f in ds.column_names), None)
    wanted = ((opts.tokens_field, "tokens_field"), (tags_field or " or ".join(_DEFAULT_TAG_FIELDS), "tags_field"))
    for field, key in wanted:
        if field not in ds.column_names:
            raise DataError(f"{source}: no column {field!r} (columns: {ds.column_names}); set data.{key}")
    names = _label_names(ds.features[tags_field], opts.label_names, source)
    ds = ds.select_columns([opts.tokens_field, tags_field])
    ds = _documents_from_markers(ds.rename_columns({opts.tokens_field: "tokens", tags_field: "tags"}))
    if names is not None:
        return ds.map(
            lambda batch: {"tags": [_names_of(row, names, source) for row in batch["tags"]]},
            batched=True,
            features=FEATURES,  # left to infer them, map would encode the names back with the old ClassLabel
        )
    return ds.cast(FEATURES)


def _documents_from_markers(ds: Dataset) -> Dataset:
    """Add `document`: a row whose tokens are exactly ["-DOCSTART-"] starts a new document and is dropped; without
    such rows each sentence is its own document."""
    markers = [tokens == [DOCSTART] for tokens in ds["tokens"]]
    documents = list(accumulate(map(int, markers))) if any(markers) else list(range(len(ds)))
    ds = ds.add_column("document", documents)
    return ds.select([i for i, marker in enumerate(markers) if not marker]) if any(markers) else ds


def _label_names(feature: Any, label_names: list[str] | None, source: str) -> list[str] | None:
    """The names for integer tag ids: the ClassLabel's, else `label_names`; None when the tags are strings."""
    inner = getattr(feature, "feature", None)
    if isinstance(inner, ClassLabel):
        return inner.names
    if isinstance(inner, Value) and inner.dtype.startswith(("int", "uint")):
        if label_names is None:
            raise DataError(f"{source}: the tags are integer ids; set data.label_names=[O, B-PER, ...] to name them")
        return label_names
    return None


def _names_of(ids: list[int], names: list[str], where: str) -> list[str]:
    if not all(0 <= i < len(names) for i in ids):
        raise DataError(f"{where}: tag ids {ids} out of range for the {len(names)} label names {names}")
    return [names[i] for i in ids]


# ---- Local files: the files of one split


def read_split_files(paths: list[Path], opts: FormatOptions) -> Dataset:
    """The files of one split, in their order, as one Dataset; a document never continues into the next file."""
    parts = []
    for file in paths:
        if file.suffix.lower() == ".parquet":
            parts.append(_read_parquet(file, opts))
        else:
            tokens, tags, documents = _read_file(file, opts)
            parts.append(Dataset.from_dict({"tokens": tokens, "tags": tags, "document": documents}, features=FEATURES))
    if len(parts) == 1:
        return parts[0]
    documents, first = [], 0  # each file numbers its documents from 0: shift them past the previous files'
    for part in parts:
        documents += [first + d for d in part["document"]]
        first = documents[-1] + 1 if documents else first
    return datasets.concatenate_datasets(parts).remove_columns("document").add_column("document", documents)


def _read_parquet(file: Path, opts: FormatOptions) -> Dataset:
    """A parquet file (a Hub dataset's parquet export: ClassLabel names ride in its schema) as tokens and tags."""
    try:
        table = pq.read_table(file)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{file}: not a readable parquet file ({err}); replace it, or leave it out") from None
    if table.num_rows == 0:
        raise _empty_file(file)
    return to_tokens_tags(Dataset(table), str(file), opts)


def _read_file(file: Path, opts: FormatOptions) -> tuple[list[list[str]], list[list[str]], list[int]]:
    if opts.format == "conll" or (opts.format == "auto" and file.suffix.lower() not in _JSON_SUFFIXES):
        return read_conll(file, opts.tag_column, opts.token_prefix)
    records = list(_iter_json(file))
    if not records:
        raise DataError(
            f"{file}: no JSON records; write one object a line with tokens and tags, or remove the file"
        )
    first = records[0][1]
    is_textminr = isinstance(first, dict) and {"prompt", "response"} <= first.keys()
    if opts.format == "textminr" or (opts.format == "auto" and is_textminr):
        tokens, tags = textminr.convert_rows(records)
        return tokens, tags, list(range(len(tokens)))
    kind = annotation.detect(records, opts.tokens_field) if opts.format == "auto" else opts.format
    if kind in annotation.FORMATS:
        tokens, tags = annotation.read_records(records, kind, opts.spans, str(file))
        return tokens, tags, list(range(len(tokens)))
    examples = [_json_example(where, record, opts) for where, record in records]
    # consecutive records with the same "document" value form one document; a record without one is its own
    keys = [r.get("document", object()) if isinstance(r, dict) else object() for _, r in records]
    return [tokens for tokens, _ in examples], [tags for _, tags in examples], _runs(keys)


def _runs(keys: Sequence[Any]) -> list[int]:
    """0, 1, 2, ...: a new number wherever the key differs from the previous one."""
    return list(accumulate(int(i > 0 and key != keys[i - 1]) for i, key in enumerate(keys)))


def _empty_file(file: Path) -> DataError:
    return DataError(f"{file}: the file is empty; fill it, or remove it (or leave it out with data.data_files)")


def _read_text(file: Path) -> str:
    data = file.read_bytes()
    if not data.strip():
        raise _empty_file(file)
    try:
        return data.decode("utf-8-sig")  # -sig: a byte-order mark must not glue itself to the first token
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(
            f"{file}:{line}: not UTF-8 (byte offset {err.start}: {data[err.start:err.start + 1]!r}); "
            f"re-encode it, e.g. iconv -f latin1 -t utf-8 {file.name} > {file.stem}.utf8{file.suffix}"
        ) from None


# ---- CoNLL columns


def conll_lines(file: Path) -> tuple[list[str], str | None, list[list[int]], list[int]]:
    """A CoNLL column file line for line: (its lines, the column separator, the line numbers (0-based) of each
    sentence's tokens, each sentence's document). Blank lines separate sentences; each -DOCSTART- line ends one and
    starts the next document (the file's first is 0). Training's reader and predict's CoNLL output both read this.

    A file with any tab is split on tabs only (separator "\t"), so "\tO" is an empty token, kept as "" (BTC has such
    lines); else on whitespace (separator None).
    """
    text = _read_text(file)
    sep = "\t" if "\t" in text else None
    lines = [line.rstrip("\r") for line in text.split("\n")]  # not splitlines(): tweets hold \x85 and \u2028
    if lines and not lines[-1]:
        lines.pop()  # the end of the last line, not a line of its own
    sentences: list[list[int]] = []
    documents: list[int] = []
    current: list[int] = []
    document = 0
    for number, line in enumerate(lines):
        if not line.strip() or line.startswith(DOCSTART):  # a document marker also ends a sentence
            if current:
                sentences.append(current)
                documents.append(document)
                current = []
            document += bool(sentences) and line.startswith(DOCSTART)  # the file's first document is 0
            continue
        current.append(number)
    if current:
        sentences.append(current)
        documents.append(document)
    if not sentences:
        raise DataError(
            f"{file}: no sentences (only blank or -DOCSTART- lines); fill it, or remove it (or leave it out with "
            "data.data_files)"
        )
    return lines, sep, sentences, documents


def read_conll(
    file: str | Path, tag_column: int = -1, token_prefix: str | None = None
) -> tuple[list[list[str]], list[list[str]], list[int]]:
    """Sentences of a CoNLL column file (`conll_lines`): token in column 0, tag in `tag_column`.
    Returns the sentences' tokens, tags and documents (numbered from 0; each -DOCSTART- line starts the next one).
    Every token line must have as many columns as the first one and a non-empty tag.
    """
    # Parsed here rather than by datasets' "conll" builder: it pads or cuts odd lines silently and cannot
    # strip prefixes, so each line would be split twice; this loop reads CoNLL-2003 train in well under a second.
    file = Path(file)
    lines, sep, numbers, documents = conll_lines(file)
    sentences: list[list[str]] = []
    sentence_tags: list[list[str]] = []
    columns = column = 0
    for sentence in numbers:
        tokens, tags = [], []
        for number in sentence:
            fields = lines[number].split(sep)
            if not columns:
                columns, column = len(fields), _tag_index(tag_column, len(fields), f"{file}:{number + 1}")
            if len(fields) != columns:
                raise DataError(
                    f"{file}:{number + 1}: {len(fields)} columns where the first token line has {columns} (split on "
                    f"{'tabs' if sep else 'whitespace'}); fix the line or remove it"
                )
            tag = fields[column].strip()
            if not tag:
                raise DataError(f"{file}:{number + 1}: empty tag in column {column}; give the token a tag (e.g. O)")
            token = fields[0]
            tokens.append(token[len(token_prefix):] if token_prefix and token.startswith(token_prefix) else token)
            tags.append(tag)
        sentences.append(tokens)
        sentence_tags.append(tags)
    return sentences, sentence_tags, documents


def _tag_index(tag_column: int, columns: int, where: str) -> int:
    if columns < 2:
        raise DataError(f"{where}: one column only; a CoNLL line needs a token and a tag (tab or space separated)")
    index = tag_column if tag_column >= 0 else columns + tag_column
    if not 0 < index < columns:
        raise ConfigError(f"data.tag_column={tag_column} does not fit {where}: {columns} columns, token in column 0")
    return index


# ---- JSON lines or a JSON list of objects


def _iter_json(file: Path) -> Iterator[tuple[str, Any]]:
    """(file:line, record) for each JSON line, or each object of a JSON list."""
    text = _read_text(file)
    decoder = json.JSONDecoder()
    in_list = text.lstrip().startswith("[")
    pos, lineno, end = (text.index("[") + 1 if in_list else 0), 1, 0
    while True:
        pos = (_LIST_GAP if in_list else _LINES_GAP).match(text, pos).end()
        if pos >= len(text) or (in_list and text[pos] == "]"):
            return
        lineno += text.count("\n", end, pos)
        try:
            record, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{file}:{err.lineno}: not valid JSON ({err.msg}); fix the line (JSON lines: one object a line)"
            ) from None
        yield f"{file}:{lineno}", record
        lineno += text.count("\n", pos, end)
        pos = end


def _json_example(where: str, record: Any, opts: FormatOptions) -> tuple[list[str], list[str]]:
    fields = record if isinstance(record, dict) else {}
    tags_field = opts.tags_field or next((f for f in _DEFAULT_TAG_FIELDS if f in fields), "tags")
    tokens, tags = fields.get(opts.tokens_field), fields.get(tags_field)
    if not isinstance(tokens, list) or not isinstance(tags, list):
        hint = "; TextminR rows: set data.format=textminr" if "prompt" in fields else ""
        raise DataError(
            f"{where}: expected an object with lists {opts.tokens_field!r} and {tags_field!r}, got "
            f"{sorted(fields) if fields else type(record).__name__}; set data.tokens_field / data.tags_field{hint}"
        )
    if len(tokens) != len(tags):
        raise DataError(f"{where}: {len(tokens)} tokens but {len(tags)} tags; every token needs one tag")
    if not all(isinstance(tag, str) for tag in tags):
        if not all(isinstance(tag, int) for tag in tags):
            raise DataError(f"{where}: tags must be all strings or all integer ids, got {tags}")
        if opts.label_names is None:
            raise DataError(f"{where}: the tags are integer ids; set data.label_names=[O, B-PER, ...] to name them")
        tags = _names_of(tags, opts.label_names, where)
    prefix = opts.token_prefix
    tokens = [str(token) for token in tokens]
    return [t[len(prefix) :] if prefix and t.startswith(prefix) else t for t in tokens], tags

