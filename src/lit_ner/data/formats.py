"""How NER files are parsed: CoNLL column files, JSON lines (or a JSON list), parquet files (a Hub dataset's
parquet export), save_to_disk folders, TextminR rows and Label Studio / doccano exports (`lit_ner.data.annotation`),
each into `tokens`, `tags` (tag strings) and `document` (the sentence's document in its split: -DOCSTART- blocks, a
JSON `document` field; else each sentence its own). Which file is which split, and where the splits come from, is
`lit_ner.data.sources`."""

import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value
from datasets.exceptions import DatasetGenerationError

from lit_ner.data import annotation, textminr
from lit_ner.data.schemes import entity_spans, longest_first, outermost_tags
from lit_ner.errors import ConfigError, DataError

FORMATS = ("auto", "conll", "json", "disk", "textminr", *annotation.FORMATS)
FEATURES = Features({"tokens": List(Value("string")), "tags": List(Value("string")), "document": Value("int64")})
# a source whose entities may nest or overlap keeps them all as word spans (end exclusive) beside the tags, which hold
# its outermost entities (what a tagger can learn)
NESTED_FEATURES = Features({**FEATURES, "entities": List({"start": Value("int32"), "end": Value("int32"),
                                                          "type": Value("string")})})  # fmt: skip
SPAN_FIELDS = ("entity_mentions", "entities")  # JSON lines of words with word-offset spans (GENIA's, lit_ner's)
DOCSTART = "-DOCSTART-"  # CoNLL's document marker: a line in column files, a one-token row in some Hub exports
_JSON_SUFFIXES = {".json", ".jsonl"}
DATA_SUFFIXES = {".txt", ".conll", ".tsv", ".iob", ".bio", ".parquet"} | _JSON_SUFFIXES  # what a data file may end in
_DEFAULT_TAG_FIELDS = ("tags", "ner_tags")
_LIST_GAP, _LINES_GAP = re.compile(r"[\s,]*"), re.compile(r"\s*")  # between JSON records
_HALF_PAIR = re.compile(r"\\u[dD][89a-fA-F]")  # a JSON escape of half a UTF-16 pair: text only with its other half


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


def read_split_files(paths: list[Path], opts: FormatOptions, scratch: Path | None = None) -> Dataset:
    """The files of one split, in their order, as one Dataset; a document never continues into the next file.
    With `scratch` (a folder), CoNLL files stream into an Arrow file there, a sentence at a time, so a corpus larger
    than memory can be read; the other formats are read whole."""
    if scratch is not None and all(_is_conll(file, opts) for file in paths):
        try:
            return Dataset.from_generator(
                # a tuple: datasets would shard a list, one generator call a file, each numbering documents from 0
                _conll_split, gen_kwargs={"files": tuple(map(str, paths)), "opts": opts}, features=FEATURES,
                cache_dir=str(scratch), keep_in_memory=False,
            )  # fmt: skip
        except DatasetGenerationError as err:  # datasets wraps what the reader raised: say that, with its file and line
            if isinstance(err.__cause__, (DataError, ConfigError)):
                raise err.__cause__ from None
            if isinstance(err.__cause__, OSError):  # a full disk, which the caller names (lit_ner.errors.space_for)
                raise err.__cause__ from err
            raise
    parts = []
    for file in paths:
        if file.suffix.lower() == ".parquet":
            parts.append(_read_parquet(file, opts))
        else:
            tokens, tags, documents, entities = _read_file(file, opts)
            columns = {"tokens": tokens, "tags": tags, "document": documents}
            if entities is None:
                parts.append(Dataset.from_dict(columns, features=FEATURES))
            else:
                parts.append(Dataset.from_dict(columns | {"entities": entities}, features=NESTED_FEATURES))
    if any("entities" in part.column_names for part in parts):
        parts = [with_entities(part) for part in parts]
    if len(parts) == 1:
        return parts[0]
    documents, first = [], 0  # each file numbers its documents from 0: shift them past the previous files'
    for part in parts:
        documents += [first + d for d in part["document"]]
        first = documents[-1] + 1 if documents else first
    return datasets.concatenate_datasets(parts).remove_columns("document").add_column("document", documents)


def _is_conll(file: Path, opts: FormatOptions) -> bool:
    suffix = file.suffix.lower()
    return opts.format == "conll" or (opts.format == "auto" and suffix not in _JSON_SUFFIXES and suffix != ".parquet")


def _conll_split(files: tuple[str, ...], opts: FormatOptions) -> Iterator[dict[str, Any]]:
    """The sentences of a split's CoNLL files as rows, documents numbered on across the files."""
    first = 0
    for file in files:
        last = None
        for tokens, tags, document in conll_examples(Path(file), opts.tag_column, opts.token_prefix):
            last = first + document
            yield {"tokens": tokens, "tags": tags, "document": last}
        first = last + 1 if last is not None else first


def _read_parquet(file: Path, opts: FormatOptions) -> Dataset:
    """A parquet file (a Hub dataset's parquet export: ClassLabel names ride in its schema) as tokens and tags."""
    try:
        table = pq.read_table(file)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{file}: not a readable parquet file ({err}); replace it, or leave it out") from None
    if table.num_rows == 0:
        raise _empty_file(file)
    return to_tokens_tags(Dataset(table), str(file), opts)


Entities = list[dict[str, Any]]  # a sentence's entities as NESTED_FEATURES holds them: {"start", "end", "type"}


def with_entities(split: Dataset) -> Dataset:
    """`split` with the column `entities`: its own where it has one, else its tags' entities (a flat source beside a
    nested one)."""
    if "entities" in split.column_names:
        return split
    return split.map(
        lambda batch: {"entities": [_as_records(entity_spans(tags)) for tags in batch["tags"]]},
        batched=True, features=Features({**split.features, "entities": NESTED_FEATURES["entities"]}),
        desc="entities of the tags",
    )  # fmt: skip


def gold_entities(split: Dataset) -> list[list[tuple[str, int, int]]]:
    """Each sentence's gold entities as (type, start, end exclusive): a nested source's own (which may nest or
    overlap), else those of its tags."""
    if "entities" in split.column_names:
        return [[(e["type"], e["start"], e["end"]) for e in sentence] for sentence in split["entities"]]
    return [entity_spans(tags) for tags in split["tags"]]


def _as_records(spans: Iterable[tuple[str, int, int]]) -> Entities:
    return [{"start": start, "end": end, "type": type_} for type_, start, end in spans]


def _read_file(
    file: Path, opts: FormatOptions
) -> tuple[list[list[str]], list[list[str]], list[int], list[Entities] | None]:
    """The sentences of one file: tokens, tags and documents, and the entities of a source that may nest (None for
    a flat one)."""
    if _is_conll(file, opts):
        return *read_conll(file, opts.tag_column, opts.token_prefix), None
    records = list(_iter_json(file))
    if not records:
        raise DataError(
            f"{file}: no JSON records; write one object a line with tokens and tags, or remove the file"
        )
    first = records[0][1]
    is_textminr = isinstance(first, dict) and {"prompt", "response"} <= first.keys()
    if opts.format == "textminr" or (opts.format == "auto" and is_textminr):
        tokens, tags = textminr.convert_rows(records)
        return tokens, tags, list(range(len(tokens))), None
    kind = annotation.detect(records, opts.tokens_field) if opts.format == "auto" else opts.format
    if kind in annotation.FORMATS:
        tokens, tags, spans = annotation.read_records(records, kind, opts.spans, str(file))
        return tokens, tags, list(range(len(tokens))), None if spans is None else [_as_records(s) for s in spans]
    examples = [_json_example(where, record, opts) for where, record in records]
    # consecutive records with the same "document" value form one document; a record without one is its own
    keys = [r.get("document", object()) if isinstance(r, dict) else object() for _, r in records]
    tokens, tags = [e[0] for e in examples], [e[1] for e in examples]
    if all(e[2] is None for e in examples):
        return tokens, tags, numbered_runs(keys), None
    spans = [entity_spans(t) if e[2] is None else e[2] for t, e in zip(tags, examples)]
    return tokens, tags, numbered_runs(keys), [_as_records(s) for s in spans]


def numbered_runs(keys: Sequence[Any]) -> list[int]:
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


def conll_separator(file: Path) -> str | None:
    """"\t" if the file holds any tab (split on tabs only, so "\tO" is an empty token, kept as "": BTC has such
    lines), else None (split on whitespace). Read in blocks: the file is never whole in memory."""
    with open(file, "rb") as f:
        while block := f.read(1 << 24):
            if b"\t" in block:
                return "\t"
    return None


def text_lines(file: Path) -> Iterator[str]:
    """A text file's lines, decoded one at a time: split on "\n" only (not str.splitlines: tweets hold \x85 and
    \u2028), a trailing "\r" dropped, a byte-order mark too; bytes that are not UTF-8 stop with the line."""
    with open(file, "rb") as f:
        offset = 0
        for number, raw in enumerate(f):
            try:
                line = raw.decode("utf-8-sig" if number == 0 else "utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{file}:{number + 1}: not UTF-8 (byte offset {offset + err.start}: {raw[err.start:err.start + 1]!r}); "
                    f"re-encode it, e.g. iconv -f latin1 -t utf-8 {file.name} > {file.stem}.utf8{file.suffix}"
                ) from None
            offset += len(raw)
            yield line.removesuffix("\n").rstrip("\r")


def conll_sentences(file: Path, lines: Iterable[str]) -> Iterator[tuple[list[int], list[str], int]]:
    """The sentences of a CoNLL column file's `lines`, as they are read: (the line numbers (0-based) of its tokens,
    those lines, its document). Blank lines separate sentences; each -DOCSTART- line ends one and starts the next
    document (the file's first is 0)."""
    numbers: list[int] = []
    current: list[str] = []
    document, sentences, blank = 0, 0, True
    for number, line in enumerate(lines):
        if not line.strip() or line.startswith(DOCSTART):  # a document marker also ends a sentence
            if current:
                yield numbers, current, document
                sentences += 1
                numbers, current = [], []
            document += bool(sentences) and line.startswith(DOCSTART)  # the file's first document is 0
            blank = blank and not line.strip()
            continue
        numbers.append(number)
        current.append(line)
    if current:
        yield numbers, current, document
    elif not sentences:
        if blank:
            raise _empty_file(file)
        raise DataError(
            f"{file}: no sentences (only blank or -DOCSTART- lines); fill it, or remove it (or leave it out with "
            "data.data_files)"
        )


def conll_lines(file: Path) -> tuple[list[str], str | None, list[list[int]], list[int]]:
    """A CoNLL column file line for line: (its lines, the column separator (`conll_separator`), the line numbers
    (0-based) of each sentence's tokens, each sentence's document), as `conll_sentences` reads them: training's
    reader and predict's CoNLL output both read this."""
    lines = list(text_lines(file))
    sentences = list(conll_sentences(file, lines))
    return lines, conll_separator(file), [numbers for numbers, _, _ in sentences], [d for _, _, d in sentences]


def conll_words(lines: Sequence[str], sep: str | None, sentences: Sequence[Sequence[int]]) -> list[list[str]]:
    """Each sentence's words, of `conll_lines`' output: the first column of its lines (any other is not read)."""
    return [[lines[n].split(sep)[0] for n in numbers] for numbers in sentences]


def conll_examples(
    file: Path, tag_column: int = -1, token_prefix: str | None = None
) -> Iterator[tuple[list[str], list[str], int]]:
    """(tokens, tags, document) of each sentence of a CoNLL column file (`conll_sentences`), one at a time: token in
    column 0, tag in `tag_column`. Every token line must have as many columns as the first one and a non-empty tag."""
    sep = conll_separator(file)
    columns = column = 0
    for numbers, lines, document in conll_sentences(file, text_lines(file)):
        tokens, tags = [], []
        for number, line in zip(numbers, lines):
            fields = line.split(sep)
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
        yield tokens, tags, document


def read_conll(
    file: str | Path, tag_column: int = -1, token_prefix: str | None = None
) -> tuple[list[list[str]], list[list[str]], list[int]]:
    """The sentences of a CoNLL column file (`conll_examples`) as lists: their tokens, tags and documents.

    Parsed here rather than by datasets' "conll" builder: it pads or cuts odd lines silently and cannot strip
    prefixes."""
    examples = list(conll_examples(Path(file), tag_column, token_prefix))
    return [e[0] for e in examples], [e[1] for e in examples], [e[2] for e in examples]


def _tag_index(tag_column: int, columns: int, where: str) -> int:
    if columns < 2:
        raise DataError(f"{where}: one column only; a CoNLL line needs a token and a tag (tab or space separated)")
    index = tag_column if tag_column >= 0 else columns + tag_column
    if not 0 < index < columns:
        raise ConfigError(f"data.tag_column={tag_column} does not fit {where}: {columns} columns, token in column 0")
    return index


# ---- JSON lines or a JSON list of objects


def parse_json(text: str, where: str) -> Any:
    """One JSON value (a line of JSON lines): what `_iter_json` checks of each record is checked here too; invalid
    JSON is a ValueError, as json.loads raises it."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise _too_deep(where) from None
    return text_checked(value, where) if _HALF_PAIR.search(text) else value


def text_checked(value: Any, where: str) -> Any:
    """`value`, once its strings are known to be text: a lone surrogate (a JSON \\ud800-\\udfff escape without its
    other half, or bytes that were not UTF-8) is no character, and no tokenizer or UTF-8 file can hold it."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        raise DataError(
            f"{where}: {err.object[err.start]!r} is a lone surrogate, half of a UTF-16 pair and no character (a "
            "\\uXXXX escape without its other half, or bytes that are not UTF-8); correct or remove it"
        ) from None
    return value


def _too_deep(where: str) -> DataError:
    return DataError(
        f"{where}: JSON nested too deeply to read (Python's reader stops near {sys.getrecursionlimit()} levels; an NER "
        "record needs a few): correct the record, or remove it"
    )


def _iter_json(file: Path) -> Iterator[tuple[str, Any]]:
    """(file:line, record) for each JSON line, or each object of a JSON list; deep nesting and lone surrogates
    (`text_checked`) stop with the line."""
    text = _read_text(file)
    halves = bool(_HALF_PAIR.search(text))  # only then can a record hold a lone surrogate
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
        except RecursionError:
            raise _too_deep(f"{file}:{lineno}") from None
        yield f"{file}:{lineno}", text_checked(record, f"{file}:{lineno}") if halves else record
        lineno += text.count("\n", pos, end)
        pos = end


def _json_example(
    where: str, record: Any, opts: FormatOptions
) -> tuple[list[str], list[str], list[tuple[str, int, int]] | None]:
    """(tokens, tags, None) of a record of words and tags; (tokens, the outermost entities' tags, every entity) of
    a record of words and word-offset entities (`entity_mentions` or `entities`: {start, end exclusive, type or
    entity_type}), which may nest."""
    fields = record if isinstance(record, dict) else {}
    tags_field = opts.tags_field or next((f for f in _DEFAULT_TAG_FIELDS if f in fields), "tags")
    spans_field = next((f for f in SPAN_FIELDS if isinstance(fields.get(f), list)), None)
    if tags_field not in fields and spans_field is not None and isinstance(fields.get(opts.tokens_field), list):
        return _span_example(where, fields, opts, spans_field)
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
    return _tokens(tokens, opts), tags, None


def _tokens(tokens: list[Any], opts: FormatOptions) -> list[str]:
    prefix = opts.token_prefix
    tokens = [str(token) for token in tokens]
    return [t[len(prefix) :] if prefix and t.startswith(prefix) else t for t in tokens]


def _span_example(
    where: str, fields: dict[str, Any], opts: FormatOptions, spans_field: str
) -> tuple[list[str], list[str], list[tuple[str, int, int]]]:
    tokens = _tokens(fields[opts.tokens_field], opts)
    spans = []
    for item in fields[spans_field]:
        item = item if isinstance(item, dict) else {}
        start, end, type_ = item.get("start"), item.get("end"), item.get("type", item.get("entity_type"))
        if not (type(start) is int and type(end) is int and 0 <= start < end <= len(tokens)):
            raise DataError(
                f"{where}: entity {item or fields[spans_field]!r} in {spans_field!r}: start and end must be word offsets "
                f"(end exclusive) within the sentence's {len(tokens)} words; fix or remove it"
            )
        if not (isinstance(type_, str) and type_.strip() and type_ == type_.strip()):
            raise DataError(f"{where}: entity {item!r} in {spans_field!r} needs a type (a non-empty string, no spaces "
                            "around it) in \"type\" or \"entity_type\"")  # fmt: skip
        spans.append((type_, start, end))
    spans = list(dict.fromkeys(spans))  # the same entity twice counts once
    return tokens, outermost_tags(len(tokens), longest_first(spans)), spans

