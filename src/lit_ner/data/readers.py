"""Reading NER data from the Hugging Face Hub, CoNLL column files, JSON (lines), parquet files (a Hub dataset's
parquet export), save_to_disk folders or TextminR rows into one shape: a DatasetDict with train/validation(/test)
splits of `tokens` and `tags` (tag strings)."""

import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value
from datasets.exceptions import DatasetNotFoundError
from huggingface_hub.errors import LocalEntryNotFoundError

from lit_ner.data import textminr
from lit_ner.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
FORMATS = ("auto", "conll", "json", "disk", "textminr")
FEATURES = Features({"tokens": List(Value("string")), "tags": List(Value("string"))})
_JSON_SUFFIXES = {".json", ".jsonl"}
_DATA_SUFFIXES = {".txt", ".conll", ".tsv", ".iob", ".bio", ".parquet"} | _JSON_SUFFIXES
_DEFAULT_TAG_FIELDS = ("tags", "ner_tags")
_SPLIT_NAMES = {"train": "train", "training": "train", "test": "test", "testb": "test", "testing": "test"} | {
    name: "validation" for name in ("validation", "valid", "val", "dev", "development", "testa")
}
_LOCAL_HINT = "run with data.path=<folder or file> to use local copies"
_LIST_GAP, _LINES_GAP = re.compile(r"[\s,]*"), re.compile(r"\s*")  # between JSON records


@dataclass(frozen=True)
class _Options:
    format: str
    tag_column: int
    token_prefix: str | None
    tokens_field: str
    tags_field: str | None
    label_names: list[str] | None


def load_ner_dataset(
    path: str | None = None,
    hub_name: str | None = None,
    hub_config: str | None = None,
    hub_revision: str | None = None,
    format: str = "auto",
    data_files: Mapping[str, Sequence[str] | str] | None = None,
    tag_column: int = -1,
    token_prefix: str | None = None,
    tokens_field: str = "tokens",
    tags_field: str | None = None,
    label_names: Sequence[str] | None = None,
    validation_fraction: float = 0.1,
    seed: int = 42,
) -> DatasetDict:
    """Load an NER dataset as splits of `tokens` and `tags`; a local `path` wins over `hub_name`.

    Without a validation split, `validation_fraction` of train is carved off with `seed`; test may be absent
    when the source has none (logged).
    """
    if format not in FORMATS:
        raise ConfigError(f"data.format={format!r} is not one of {', '.join(FORMATS)}")
    if not 0.0 < validation_fraction < 1.0:
        raise ConfigError(f"data.validation_fraction={validation_fraction} must lie strictly between 0 and 1")
    names = list(label_names) if label_names is not None else None
    opts = _Options(format, tag_column, token_prefix, tokens_field, tags_field, names)
    if path is not None:
        if hub_name:
            logger.info("data.path is set: reading %s instead of the hub dataset %s", path, hub_name)
        splits = _load_local(Path(path).expanduser(), data_files, opts)
    elif hub_name:
        splits = _load_hub(hub_name, hub_config, hub_revision, opts)
    else:
        raise ConfigError("no data source: set data.path=<folder or file> or data.hub_name=<owner/dataset>")
    return _finish(splits, validation_fraction, seed)


# ---- Hub and save_to_disk folders: Arrow datasets whose columns are renamed and whose tag ids are named


def _load_hub(name: str, config: str | None, revision: str | None, opts: _Options) -> dict[str, tuple[Dataset, str]]:
    label = f"{name}" + (f" ({config})" if config else "")
    try:
        loaded = datasets.load_dataset(name, config, revision=revision)
    except (ConnectionError, TimeoutError, LocalEntryNotFoundError) as err:
        # datasets reports both HF_HUB_OFFLINE=1 and a dead network as ConnectionError (after its retries).
        raise DataError(
            f"the Hugging Face Hub is unreachable for dataset {label} (offline, or no network: {err}); "
            f"{_LOCAL_HINT}, e.g. data.path=/path/to/{name.split('/')[-1]}"
        ) from None
    except DatasetNotFoundError as err:
        raise DataError(f"hub dataset {label} not found ({err}); check data.hub_name/hub_config, or {_LOCAL_HINT}")
    return _from_arrow(loaded, f"hub {label}", opts)


def _from_arrow(loaded: Dataset | DatasetDict, source: str, opts: _Options) -> dict[str, tuple[Dataset, str]]:
    if isinstance(loaded, Dataset):
        loaded = DatasetDict({"train": loaded})
    splits = {}
    for name, ds in loaded.items():
        split = _normalise_split(name)
        if split is None:
            logger.info("%s: ignoring split %r (not train/validation/test)", source, name)
            continue
        splits[split] = (_to_tokens_tags(ds, f"{source} split {name!r}", opts), f"{source} split {name!r}")
    return splits


def _to_tokens_tags(ds: Dataset, source: str, opts: _Options) -> Dataset:
    tags_field = opts.tags_field or next((f for f in _DEFAULT_TAG_FIELDS if f in ds.column_names), None)
    wanted = ((opts.tokens_field, "tokens_field"), (tags_field or " or ".join(_DEFAULT_TAG_FIELDS), "tags_field"))
    for field, key in wanted:
        if field not in ds.column_names:
            raise DataError(f"{source}: no column {field!r} (columns: {ds.column_names}); set data.{key}")
    names = _label_names(ds.features[tags_field], opts.label_names, source)
    ds = ds.select_columns([opts.tokens_field, tags_field])
    ds = ds.rename_columns({opts.tokens_field: "tokens", tags_field: "tags"})
    if names is not None:
        return ds.map(
            lambda batch: {"tags": [_names_of(row, names, source) for row in batch["tags"]]},
            batched=True,
            features=FEATURES,  # left to infer them, map would encode the names back with the old ClassLabel
        )
    return ds.cast(FEATURES)


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


# ---- Local files: which file is which split


def _load_local(path: Path, data_files: Mapping | None, opts: _Options) -> dict[str, tuple[Dataset, str]]:
    if not path.exists():
        raise ConfigError(f"data.path={path} does not exist; give the folder (or file) that holds the split files")
    if opts.format == "disk" or (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        try:
            loaded = datasets.load_from_disk(str(path))
        except FileNotFoundError as err:
            raise DataError(f"{path} is not a save_to_disk folder ({err}); set data.format=auto") from None
        return _from_arrow(loaded, f"saved dataset {path}", opts)
    if path.is_file():
        if data_files:
            raise ConfigError(f"data.data_files needs data.path to be a folder, got the file {path}")
        logger.info("%s is a single file: it is the train split; validation is carved from it, no test", path)
        files = {"train": [path]}
    else:
        files = _glob_splits(path, data_files) if data_files else _discover_splits(path)
    if "train" not in files:
        found = sorted(str(f.relative_to(path)) for f in path.rglob("*") if f.is_file())[:20]
        raise DataError(
            f"no train split under {path} (found: {found}); name it train*, or set "
            f"data.data_files={{train: [...], validation: [...], test: [...]}} (file name globs under data.path)"
        )
    return {split: (_read_files(paths, opts), ", ".join(map(str, paths))) for split, paths in files.items()}


def _normalise_split(name: str) -> str | None:
    """train/validation/test for a split name or data_files key: dev, valid, val, testa -> validation; testb -> test."""
    return _SPLIT_NAMES.get(name.lower())


def _split_of_file(name: str) -> str | None:
    """The split a file name announces (train*, dev*, valid*, testa, test*, testb: train.txt, btc.dev, eng.testa)."""
    suffix = Path(name).suffix.lower()
    if suffix in _DATA_SUFFIXES:
        name = name[: -len(suffix)]
    elif suffix and suffix[1:] not in _SPLIT_NAMES:
        return None  # README.md, *.arrow, *.py are not data
    for word in re.split(r"[._\-\s]+", name.lower()):
        if word in ("val", "testa") or word.startswith(("dev", "valid")):
            return "validation"
        if word.startswith("test"):  # test, testb, testing
            return "test"
        if word.startswith("train"):
            return "train"
    return None


def _discover_splits(root: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for file in sorted(root.rglob("*")):
        hidden = any(part.startswith(".") for part in file.relative_to(root).parts)
        if hidden or not file.is_file():
            continue
        split = _split_of_file(file.name)
        if split is None and file.suffix.lower() == ".parquet" and file.parent != root:
            split = _normalise_split(file.parent.name)  # the Hub's parquet layout: <config>/<split>/0000.parquet
        if split:
            found.setdefault(split, []).append(file)
    for split, files in found.items():
        # Shards of one split sit side by side; matches in different folders are more likely two datasets.
        if len({file.parent for file in files}) > 1:
            raise DataError(
                f"several folders under {root} hold a {split} split: {[str(f) for f in files]}; "
                f"pick the files with data.data_files={{{split}: [...]}} or point data.path at one folder"
            )
    return found


def _glob_splits(root: Path, data_files: Mapping) -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {}
    for key, globs in data_files.items():
        split = _normalise_split(str(key))
        if split is None:
            raise ConfigError(f"data.data_files.{key}: unknown split; use train, validation (dev) or test")
        chosen = files.setdefault(split, [])
        for pattern in [globs] if isinstance(globs, str) else list(globs):
            matches = sorted(f for f in root.rglob(pattern) if f.is_file()) if not Path(pattern).is_absolute() else []
            if not matches:
                raise DataError(
                    f"data.data_files.{key}: no file under {root} matches {pattern!r}; fix the name or glob "
                    "(relative to data.path) or add the file"
                )
            chosen += [f for f in matches if f not in chosen]
    return files


def _read_files(paths: list[Path], opts: _Options) -> Dataset:
    """The files of one split, in their order, as one Dataset."""
    parts = []
    for file in paths:
        if file.suffix.lower() == ".parquet":
            parts.append(_read_parquet(file, opts))
        else:
            tokens, tags = _read_file(file, opts)
            parts.append(Dataset.from_dict({"tokens": tokens, "tags": tags}, features=FEATURES))
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def _read_parquet(file: Path, opts: _Options) -> Dataset:
    """A parquet file (a Hub dataset's parquet export: ClassLabel names ride in its schema) as tokens and tags."""
    try:
        table = pq.read_table(file)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{file}: not a readable parquet file ({err}); replace it, or leave it out") from None
    if table.num_rows == 0:
        raise _empty_file(file)
    return _to_tokens_tags(Dataset(table), str(file), opts)


def _read_file(file: Path, opts: _Options) -> tuple[list[list[str]], list[list[str]]]:
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
        return textminr.convert_rows(records)
    examples = [_json_example(where, record, opts) for where, record in records]
    return [tokens for tokens, _ in examples], [tags for _, tags in examples]


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


def read_conll(
    file: str | Path, tag_column: int = -1, token_prefix: str | None = None
) -> tuple[list[list[str]], list[list[str]]]:
    """Sentences of a CoNLL column file: token in column 0, tag in `tag_column`; blank lines separate sentences.

    A file with any tab is split on tabs only, so "\\tO" is an empty token, kept as "" (BTC has such lines).
    Every token line must have as many columns as the first one and a non-empty tag.
    """
    # Parsed here rather than by datasets' "conll" builder: it pads or cuts odd lines silently and cannot
    # strip prefixes, so each line would be split twice; this loop reads CoNLL-2003 train in well under a second.
    file = Path(file)
    text = _read_text(file)
    sep = "\t" if "\t" in text else None
    sentences: list[list[str]] = []
    sentence_tags: list[list[str]] = []
    tokens: list[str] = []
    tags: list[str] = []
    columns = column = 0
    for lineno, line in enumerate(text.split("\n"), 1):  # not splitlines(): tweets hold \x85 and \u2028
        line = line.rstrip("\r")
        if not line.strip() or line.startswith("-DOCSTART-"):  # a document marker also ends a sentence
            if tokens:
                sentences.append(tokens)
                sentence_tags.append(tags)
                tokens, tags = [], []
            continue
        fields = line.split(sep)
        if not columns:
            columns, column = len(fields), _tag_index(tag_column, len(fields), f"{file}:{lineno}")
        if len(fields) != columns:
            raise DataError(
                f"{file}:{lineno}: {len(fields)} columns where the first token line has {columns} (split on "
                f"{'tabs' if sep else 'whitespace'}); fix the line or remove it"
            )
        tag = fields[column].strip()
        if not tag:
            raise DataError(f"{file}:{lineno}: empty tag in column {column}; give the token a tag (e.g. O)")
        token = fields[0]
        tokens.append(token[len(token_prefix):] if token_prefix and token.startswith(token_prefix) else token)
        tags.append(tag)
    if tokens:
        sentences.append(tokens)
        sentence_tags.append(tags)
    if not sentences:
        raise DataError(
            f"{file}: no sentences (only blank or -DOCSTART- lines); fill it, or remove it (or leave it out with "
            "data.data_files)"
        )
    return sentences, sentence_tags


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


def _json_example(where: str, record: Any, opts: _Options) -> tuple[list[str], list[str]]:
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


# ---- Every source: drop empty sentences, carve validation, log where each split came from


def _finish(splits: dict[str, tuple[Dataset, str]], fraction: float, seed: int) -> DatasetDict:
    if "train" not in splits:
        raise DataError(f"the source has no train split (found: {sorted(splits)}); set data.path to local files")
    splits = {split: (_drop_empty(ds, source), source) for split, (ds, source) in splits.items()}
    if "validation" not in splits:
        train, source = splits["train"]
        try:
            parts = train.train_test_split(test_size=fraction, seed=seed)
        except ValueError as err:
            raise DataError(f"cannot carve a validation split from {len(train)} train sentences ({err})") from None
        splits["train"] = (parts["train"], source)
        splits["validation"] = (parts["test"], f"a {fraction:g} share carved from train ({source}), seed {seed}")
    if "test" not in splits:
        logger.warning("the source has no test split: only train and validation are available")
    for split in SPLITS:
        if split in splits:
            logger.info("%s: %d sentences from %s", split, len(splits[split][0]), splits[split][1])
    return DatasetDict({split: splits[split][0] for split in SPLITS if split in splits})


def _drop_empty(ds: Dataset, source: str) -> Dataset:
    table = ds.with_format("arrow")[:]
    lengths = pc.list_value_length(table["tokens"])
    mismatched = pc.not_equal(lengths, pc.list_value_length(table["tags"]))
    if pc.any(mismatched).as_py():
        row = pc.index(mismatched, True).as_py()
        raise DataError(f"{source}: row {row} has {len(ds[row]['tokens'])} tokens but {len(ds[row]['tags'])} tags")
    # The hub BTC loader yields an empty example at the end of each file; it has nothing to learn from.
    keep = pc.indices_nonzero(pc.greater(lengths, 0)).to_pylist()
    if len(keep) < len(ds):
        logger.info("%s: dropped %d empty sentences", source, len(ds) - len(keep))
        ds = ds.select(keep)
    return ds
