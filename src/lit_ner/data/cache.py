"""The encoded-data cache: one folder per (source, its files' sizes and times, tokenizer, encoding options, lit_ner
version), written whole or not at all, and waited for by the processes that do not write it."""

import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from datasets import DatasetDict

import lit_ner
from lit_ner.errors import DataError, space_for

log = logging.getLogger(__name__)
# the DataModule's arguments that change the encoded data (besides the source's own, which the caller names)
ENCODING_KEYS = ("synthetic", "synthetic_size", "labels", "scheme", "train_scheme", "max_length", "window_context",
                 "context", "context_tokens", "label_all_tokens", "pretokenizer")  # fmt: skip


def folder_for(hparams: Mapping[str, Any], source_keys: Sequence[str], files: Sequence[Path] = ()) -> Path:
    """The folder of the data these DataModule arguments encode, under `cache_dir` (~/.cache/lit_ner by default);
    `files`: the local files the source reads, keyed by their sizes and times."""
    keyed = {k: hparams[k] for k in (*source_keys, *ENCODING_KEYS)}
    keyed["tokenizer_name_or_path"] = _resolve(hparams["tokenizer_name_or_path"])
    keyed["version"] = lit_ner.__version__
    if hparams["path"]:
        keyed["path"] = _resolve(hparams["path"])
        keyed["files"] = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    digest = hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(hparams["cache_dir"] or Path.home() / ".cache" / "lit_ner").expanduser() / digest


def write(target: Path, words: DatasetDict, encoded: DatasetDict, meta: dict[str, Any]) -> None:
    """Write next to the target under a name of this process's own, then rename: a killed run never leaves a
    half-written cache behind, and two runs preparing the same data at once cannot clobber each other."""
    target.parent.mkdir(parents=True, exist_ok=True)
    needed = sum(split.data.nbytes for splits in (words, encoded) for split in splits.values())
    then = "run again, or set data.cache_dir to a folder on a disk with room."
    with space_for("the encoded data cache", target.parent, needed, then):
        partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=f"{target.name}.partial-"))
        try:
            words.save_to_disk(str(partial / "words"))
            encoded.save_to_disk(str(partial / "encoded"))
            (partial / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            partial.rename(target)
        except OSError:
            if not (target / "meta.json").exists():  # not "another process finished first": a real failure
                raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    log.info("encoded data cached in %s", target)


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
