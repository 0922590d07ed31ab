"""The encoded-data cache: one folder per (source, the content of its files, tokenizer, encoding options, lit_ner
version), written whole or not at all, and waited for by the processes that do not write it."""

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, concatenate_datasets
from datasets.table import ConcatenationTable, MemoryMappedTable

import lit_ner
from lit_ner import files
from lit_ner.data.reading import Reading
from lit_ner.errors import DataError, space_for

log = logging.getLogger(__name__)
# how a cache folder is laid out: 4 = Arrow files listed in meta.json, encoded rows with their gold spans and each
# word's sub-tokens (2 had neither, 1 was save_to_disk's)
LAYOUT = 4
# the DataModule's arguments that change the encoded data (besides the source's own, which the caller names)
ENCODING_KEYS = ("synthetic", "synthetic_size", "labels", "scheme", "train_scheme", *Reading.keys())
HASHES = "file-hashes.json"  # in the cache folder: the data files' hashes, remembered by what the file system says
# a file changed less than this long before it is hashed is hashed again next run, not remembered: a file system whose
# timestamps tick this coarsely could give an edit right after the hash the change time the hash was remembered by
SETTLED_NS = 2_000_000_000
THEN = "run again, or set data.cache_dir to a folder on a disk with room."  # what to do once a full disk has room


def root_of(hparams: Mapping[str, Any]) -> Path:
    """The cache folder: data.cache_dir, ~/.cache/lit_ner by default."""
    return Path(hparams["cache_dir"] or Path.home() / ".cache" / "lit_ner").expanduser()


def folder_for(
    hparams: Mapping[str, Any],
    source_keys: Sequence[str],
    digests: Sequence[tuple[Path, str]] = (),
    extra_train: Sequence[tuple[Path, str]] = (),
) -> Path:
    """The folder of the data these DataModule arguments encode, under `root_of`; `digests`: the local files the
    source reads, each with the hash of its content (`FileHashes`); `extra_train`: data.extra_train's, so."""
    keyed = {k: hparams[k] for k in (*source_keys, *ENCODING_KEYS)}
    if extra_train:  # by name and content, not folder: runs that add the same file (a teacher's tags) share an entry
        keyed["extra_train"] = [(path.name, digest) for path, digest in extra_train]
    keyed["tokenizer_name_or_path"] = _resolve(hparams["tokenizer_name_or_path"])
    keyed["version"] = lit_ner.__version__
    keyed["layout"] = LAYOUT
    if hparams["path"]:
        keyed["path"] = _resolve(hparams["path"])
        keyed["files"] = [(str(path), digest) for path, digest in digests]
    digest = hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return root_of(hparams) / digest


class FileHashes:
    """The SHA-256 of data files' content, read in blocks (about 1.5 GB/s where the CPU has SHA instructions:
    docs/benchmarks.md). A hash is remembered in the cache folder with the file's size, modification and change
    times, inode and device, and served while all five are the same. An edit that puts back the size and the
    modification time (os.utime) still moves the change time, which only the kernel sets, to the moment of the edit:
    the file is read again. Files changed within SETTLED_NS of their hashing are never remembered."""

    def __init__(self, root: Path) -> None:
        self.file = root / HASHES
        self.known = _read_json(self.file)
        self.fresh: dict[str, list] = {}

    def digest(self, path: Path) -> str:
        key = str(path.resolve())
        before = path.stat()
        stamp = [before.st_size, before.st_mtime_ns, before.st_ctime_ns, before.st_ino, before.st_dev]
        known = self.known.get(key)
        if isinstance(known, list) and known[:5] == stamp:
            return known[5]
        started = time.time_ns()
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        after = path.stat()
        if after.st_ctime_ns == before.st_ctime_ns and before.st_ctime_ns < started - SETTLED_NS:
            self.fresh[key] = [*stamp, digest]
        return digest

    def remember(self) -> None:
        """Add the hashes read this run to the file (those of files that no longer exist go)."""
        if not self.fresh:
            return
        known = {k: v for k, v in _read_json(self.file).items() if os.path.exists(k)} | self.fresh
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            files.write_text(self.file, json.dumps(known, indent=0))
        except OSError as err:  # a speed-up only: the cache itself is written
            log.warning("could not remember the data files' hashes in %s (%s): they are read again next run",
                        self.file, err)  # fmt: skip
        self.fresh = {}


def _read_json(file: Path) -> dict[str, Any]:
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def complete(folder: Path) -> bool:
    """Whether `folder` holds a whole cache entry: its meta.json, written last, reads as JSON. A truncated or
    invalid one (a disk error, a power cut on a writer that did not flush) counts as absent: prepared again."""
    return "files" in _read_json(folder / "meta.json")


def write(target: Path, parts: Mapping[str, DatasetDict], meta: dict[str, Any], scratch: Path | None = None) -> None:
    """Write the entry whole or not at all (`lit_ner.files.replaced`, meta.json last): a killed run never leaves a
    half-written cache behind, and of two runs preparing the same data at once the first to finish is kept (the
    other's may be read already). `parts`: {"words": ..., "encoded": ...}. Each split is written once: a split that
    is just the Arrow files this run wrote under `scratch` (a streamed source, a map's output) has those files moved
    in; any other (in memory, a selection of rows, a hub cache's file) is written here."""
    target.parent.mkdir(parents=True, exist_ok=True)
    moved: dict[int, list[str]] = {}
    for split in (split for splits in parts.values() for split in splits.values()):
        own = _own_files(split, scratch)
        claimed = {path for paths in moved.values() for path in paths}
        moved[id(split)] = [] if claimed.intersection(own) else own  # a file two splits share is written for each
    needed = sum(split.data.nbytes for splits in parts.values() for split in splits.values() if not moved[id(split)])
    with space_for("the encoded data cache", target.parent, needed, THEN), files.replaced(target, complete) as partial:
        partial.mkdir()
        listed: dict[str, dict[str, list[str]]] = {}
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
                listed.setdefault(kind, {})[name] = names
        # last: an entry is whole once its meta.json is (`complete`)
        (partial / "meta.json").write_text(json.dumps(meta | {"files": listed}, indent=1), encoding="utf-8")
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
    deadline = time.monotonic() + timeout
    if not complete(folder):
        log.info("waiting for local rank 0 to encode the data into %s", folder)
    while not complete(folder):
        if time.monotonic() > deadline:
            raise DataError(
                f"no encoded data appeared in {folder} within {timeout:.0f} s; local rank 0 of this node prepares "
                "it: see its log for the error (data.cache_dir must be visible to all processes of a node)"
            )
        time.sleep(poll)


def _resolve(name_or_path: str) -> str:
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.exists() else name_or_path
