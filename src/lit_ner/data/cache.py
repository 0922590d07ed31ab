"""The encoded-data cache: one folder per (source, its files' sizes and times, tokenizer, encoding options, lit_ner
version), written whole or not at all, and waited for by the processes that do not write it."""

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, concatenate_datasets
from datasets.table import ConcatenationTable, MemoryMappedTable

import lit_ner
from lit_ner.data.reading import Reading
from lit_ner.errors import DataError, space_for

log = logging.getLogger(__name__)
# how a cache folder is laid out: 4 = Arrow files listed in meta.json, encoded rows with their gold spans and each
# word's sub-tokens (2 had neither, 1 was save_to_disk's)
LAYOUT = 4
# the DataModule's arguments that change the encoded data (besides the source's own, which the caller names)
ENCODING_KEYS = ("synthetic", "synthetic_size", "labels", "scheme", "train_scheme", *Reading.keys())


def folder_for(hparams: Mapping[str, Any], source_keys: Sequence[str], files: Sequence[Path] = ()) -> Path:
    """The folder of the data these DataModule arguments encode, under `cache_dir` (~/.cache/lit_ner by default);
    `files`: the local files the source reads, keyed by their sizes and times."""
    keyed = {k: hparams[k] for k in (*source_keys, *ENCODING_KEYS)}
    keyed["tokenizer_name_or_path"] = _resolve(hparams["tokenizer_name_or_path"])
    keyed["version"] = lit_ner.__version__
    keyed["layout"] = LAYOUT
    if hparams["path"]:
        keyed["path"] = _resolve(hparams["path"])
        keyed["files"] = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    digest = hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(hparams["cache_dir"] or Path.home() / ".cache" / "lit_ner").expanduser() / digest


def write(target: Path, parts: Mapping[str, DatasetDict], meta: dict[str, Any], scratch: Path | None = None) -> None:
    """Write next to the target under a name of this process's own, then rename: a killed run never leaves a
    half-written cache behind, and two runs preparing the same data at once cannot clobber each other. `parts`:
    {"words": ..., "encoded": ...}. Each split is written once: a split that is just the Arrow files this run wrote
    under `scratch` (a streamed source, a map's output) has those files moved in; any other (in memory, a selection
    of rows, a hub cache's file) is written here."""
    target.parent.mkdir(parents=True, exist_ok=True)
    moved: dict[int, list[str]] = {}
    for split in (split for splits in parts.values() for split in splits.values()):
        own = _own_files(split, scratch)
        claimed = {path for paths in moved.values() for path in paths}
        moved[id(split)] = [] if claimed.intersection(own) else own  # a file two splits share is written for each
    needed = sum(split.data.nbytes for splits in parts.values() for split in splits.values() if not moved[id(split)])
    then = "run again, or set data.cache_dir to a folder on a disk with room."
    with space_for("the encoded data cache", target.parent, needed, then):
        partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=f"{target.name}.partial-"))
        try:
            files: dict[str, dict[str, list[str]]] = {}
            for kind, splits in parts.items():
                for name, split in splits.items():
                    folder = partial / kind / name
                    folder.mkdir(parents=True)
                    sources = moved[id(split)]
                    names = [f"{i:05d}.arrow" for i in range(len(sources) or 1)]
                    if sources:
                        for source, file in zip(sources, names):
                            os.replace(source, folder / file)  # same file system: a rename, not a copy
                    else:
                        split.flatten_indices(cache_file_name=str(folder / names[0]))
                    files.setdefault(kind, {})[name] = names
            (partial / "meta.json").write_text(json.dumps(meta | {"files": files}, indent=1), encoding="utf-8")
            partial.rename(target)
        except OSError:
            if not (target / "meta.json").exists():  # not "another process finished first": a real failure
                raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    log.info("encoded data cached in %s", target)


def read(folder: Path, kind: str) -> DatasetDict:
    """A cached DatasetDict (`write`'s "words" or "encoded"), memory-mapped: every process of a node reads the same
    pages, none holds a copy."""
    files = json.loads((folder / "meta.json").read_text(encoding="utf-8"))["files"][kind]
    return DatasetDict({
        name: concatenate_datasets([Dataset.from_file(str(folder / kind / name / file)) for file in names])
        for name, names in files.items()
    })  # fmt: skip


_SAME_ROWS = ("replace_schema_metadata", "slice")


def _own_files(split: Dataset, scratch: Path | None) -> list[str]:
    """The Arrow files under `scratch` that hold exactly `split`, in order; [] when it is anything else (in memory,
    a selection of rows, columns added or removed after the write, another folder's files)."""
    if scratch is None or split._indices is not None:
        return []
    table = split.data
    blocks = [row for row in table.blocks] if isinstance(table, ConcatenationTable) else [[table]]
    if any(len(row) != 1 for row in blocks):  # columns joined side by side
        return []
    paths = []
    for (block,) in blocks:
        # the whole file as written: only its schema's metadata replaced, or sliced to all of its rows
        if not isinstance(block, MemoryMappedTable) or any(op not in _SAME_ROWS for op, *_ in block.replays):
            return []
        written = MemoryMappedTable.from_file(block.path)
        if written.num_rows != block.num_rows or not written.schema.equals(block.schema, check_metadata=False):
            return []
        paths.append(block.path)
    inside = all(Path(p).resolve().is_relative_to(scratch.resolve()) for p in paths)
    return paths if inside and len(set(paths)) == len(paths) else []


def wait_for(folder: Path, timeout: float, poll: float) -> None:
    """In the processes that do not prepare the data: wait until the process that does has cached it."""
    meta_file = folder / "meta.json"
    deadline = time.monotonic() + timeout
    if not meta_file.exists():
        log.info("waiting for local rank 0 to encode the data into %s", folder)
    while not meta_file.exists():
        if time.monotonic() > deadline:
            raise DataError(
                f"no encoded data appeared in {folder} within {timeout:.0f} s; local rank 0 of this node prepares "
                "it: see its log for the error (data.cache_dir must be visible to all processes of a node)"
            )
        time.sleep(poll)


def _resolve(name_or_path: str) -> str:
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.exists() else name_or_path
