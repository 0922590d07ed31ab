"""Where the splits of an NER dataset come from: the Hugging Face Hub, or local files (a file, a folder whose file
names say their split, data.data_files globs, a save_to_disk folder); then every source is finished alike (empty
sentences dropped, a missing validation split carved from train), and data.extra_train's files may join its train
split (`with_extra_train`). The result is one shape: a DatasetDict with
train/validation(/test) splits of `tokens` and `tags` (tag strings). How each file is parsed is
`lit_ner.data.formats`."""

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import datasets
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict
from datasets.exceptions import DatasetNotFoundError
from huggingface_hub.errors import LocalEntryNotFoundError

from lit_ner.data.annotation import SpanOptions, check_options
from lit_ner.data.formats import (
    DATA_SUFFIXES, FORMATS, FormatOptions, is_saved_dataset, read_saved_dataset, read_split_files, to_tokens_tags,
    with_entities,
)
from lit_ner.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
_SPLIT_NAMES = {"train": "train", "training": "train", "test": "test", "testb": "test", "testing": "test"} | {
    name: "validation" for name in ("validation", "valid", "val", "dev", "development", "testa")
}
_LOCAL_HINT = "run with data.path=<folder or file> to use local copies"


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
    text_field: str | None = None,
    span_policy: str = "snap",
    overlap_policy: str = "refuse",
    pretokenizer: str = "punctuation",
    validation_fraction: float = 0.1,
    seed: int = 42,
    scratch: Path | None = None,
) -> DatasetDict:
    """Load an NER dataset as splits of `tokens` and `tags`; a local `path` wins over `hub_name`.

    Without a validation split, `validation_fraction` of train is carved off with `seed`; test may be absent
    when the source has none (logged). `text_field`, `span_policy`, `overlap_policy` and `pretokenizer` say how Label
    Studio and doccano exports become words (`lit_ner.data.annotation.SpanOptions`). With `scratch` (a folder),
    CoNLL files stream into Arrow files there instead of memory (`formats.read_split_files`).
    """
    opts = format_options(format, tag_column, token_prefix, tokens_field, tags_field, label_names, text_field,
                          span_policy, overlap_policy, pretokenizer)  # fmt: skip
    if not 0.0 < validation_fraction < 1.0:
        raise ConfigError(f"data.validation_fraction={validation_fraction} must lie strictly between 0 and 1")
    if path is not None:
        if hub_name:
            logger.info("data.path is set: reading %s instead of the hub dataset %s", path, hub_name)
        splits = _load_local(Path(path).expanduser(), data_files, opts, scratch)
    elif hub_name:
        splits = _load_hub(hub_name, hub_config, hub_revision, opts)
    else:
        raise ConfigError("no data source: set data.path=<folder or file> or data.hub_name=<owner/dataset>")
    return _finish(splits, validation_fraction, seed)


def format_options(
    format: str = "auto",
    tag_column: int = -1,
    token_prefix: str | None = None,
    tokens_field: str = "tokens",
    tags_field: str | None = None,
    label_names: Sequence[str] | None = None,
    text_field: str | None = None,
    span_policy: str = "snap",
    overlap_policy: str = "refuse",
    pretokenizer: str = "punctuation",
) -> FormatOptions:
    """How the source's files are read, from the data.* keys of these names (checked): the source's own files and
    data.extra_train's."""
    if format not in FORMATS:
        raise ConfigError(f"data.format={format!r} is not one of {', '.join(FORMATS)}")
    names = list(label_names) if label_names is not None else None
    spans = SpanOptions(text_field, span_policy, overlap_policy, pretokenizer)
    check_options(spans)
    return FormatOptions(format, tag_column, token_prefix, tokens_field, tags_field, names, spans)


def with_extra_train(
    splits: DatasetDict, files: Sequence[Path], opts: FormatOptions, scratch: Path | None = None
) -> DatasetDict:
    """`splits` with the sentences of `files` (data.extra_train, read as the source's files are) after train's:
    validation was carved before they came, and validation and test never see them."""
    where = f"data.extra_train ({', '.join(map(str, files))})"
    extra = _drop_empty(read_split_files(list(files), opts, scratch and scratch / "extra_train"), where)
    # their documents follow train's (the whole table's, when validation was carved from it), so that none continues
    # train's last (data.context=document)
    documents = splits["train"].data.column("document")
    first = pc.max(documents).as_py() + 1 if len(documents) else 0
    extra = extra.remove_columns("document").add_column("document", [first + d for d in extra["document"]])
    if any("entities" in split.column_names for split in (*splits.values(), extra)):  # as `_finish`: spans kept
        splits = DatasetDict({name: with_entities(split) for name, split in splits.items()})
        extra = with_entities(extra)
    logger.info("train: %d more sentences from %s", len(extra), where)
    train = datasets.concatenate_datasets([splits["train"], extra.cast(splits["train"].features)])
    return DatasetDict({**splits, "train": train})


# ---- The Hub, and Arrow datasets' splits (Hub or save_to_disk)


def _load_hub(
    name: str, config: str | None, revision: str | None, opts: FormatOptions
) -> dict[str, tuple[Dataset, str]]:
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


def _from_arrow(loaded: Dataset | DatasetDict, source: str, opts: FormatOptions) -> dict[str, tuple[Dataset, str]]:
    if isinstance(loaded, Dataset):
        loaded = DatasetDict({"train": loaded})
    splits = {}
    for name, ds in loaded.items():
        split = _normalise_split(name)
        if split is None:
            logger.info("%s: ignoring split %r (not train/validation/test)", source, name)
            continue
        splits[split] = (to_tokens_tags(ds, f"{source} split {name!r}", opts), f"{source} split {name!r}")
    return splits


# ---- Local files: which file is which split


def _load_local(
    path: Path, data_files: Mapping | None, opts: FormatOptions, scratch: Path | None = None
) -> dict[str, tuple[Dataset, str]]:
    if not path.exists():
        raise ConfigError(f"data.path={path} does not exist; give the folder (or file) that holds the split files")
    if is_saved_dataset(path, opts.format):
        return _from_arrow(read_saved_dataset(path), f"saved dataset {path}", opts)
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
    return {
        split: (read_split_files(paths, opts, scratch and scratch / split), ", ".join(map(str, paths)))
        for split, paths in files.items()
    }


def local_files(path: Path, data_files: Mapping | None, format: str = "auto") -> list[Path]:
    """The files reading a local source opens (what the data cache is keyed by): a save_to_disk folder's data files,
    the one file, or the split files found by name or by data.data_files; none where the path does not exist."""
    if not path.exists():
        return []
    if is_saved_dataset(path, format):
        # datasets writes cache-*.arrow files beside a save_to_disk folder when it is read: not its data
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(("cache-", ".")))
    if path.is_file():
        return [path]
    files = _glob_splits(path, data_files) if data_files else _discover_splits(path)
    return sorted(file for split in files.values() for file in split)


def _normalise_split(name: str) -> str | None:
    """train/validation/test for a split name or data_files key: dev, valid, val, testa -> validation; testb -> test."""
    return _SPLIT_NAMES.get(name.lower())


def _split_of_file(name: str) -> str | None:
    """The split a file name announces (train*, dev*, valid*, testa, test*, testb: train.txt, btc.dev, eng.testa)."""
    suffix = Path(name).suffix.lower()
    if suffix in DATA_SUFFIXES:
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


# ---- Every source: drop empty sentences, carve validation, log where each split came from


def _finish(splits: dict[str, tuple[Dataset, str]], fraction: float, seed: int) -> DatasetDict:
    if "train" not in splits:
        raise DataError(f"the source has no train split (found: {sorted(splits)}); set data.path to local files")
    splits = {split: (_drop_empty(ds, source), source) for split, (ds, source) in splits.items()}
    if any("entities" in ds.column_names for ds, _ in splits.values()):  # one nested split: every split keeps spans
        splits = {split: (with_entities(ds), source) for split, (ds, source) in splits.items()}
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
