"""Kill-safe checkpoint files: each is written to a temporary name beside its target, flushed to disk, then renamed
over it, so a kill at any moment leaves the old checkpoint or the new one. Loading is `weights_only` unless asked."""

import os
from pathlib import Path
from typing import Any, Callable

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


def atomic_save(checkpoint: dict[str, Any], path: Path) -> None:
    """`torch.save` to `<name>.partial` in the same folder, fsync, then `os.replace`: the rename is atomic
    only within one file system, hence the same folder. A leftover `.partial` (a killed write) is overwritten
    by the next save and never read."""
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # and the rename itself survives a power cut
    finally:
        os.close(folder)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's TorchCheckpointIO with `atomic_save` for local paths. Lightning's own `_atomic_save` (2.6)
    writes through an fsspec transaction whose temporary file lives in $TMPDIR: across file systems the final
    move is a copy into the target (a kill mid-copy leaves a truncated checkpoint), and nothing is fsynced."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if "://" in str(path):  # remote storage: fsspec's transaction is the tool there
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save(checkpoint, path)

    def load_checkpoint(
        self, path: Any, map_location: Callable | None = lambda storage, loc: storage, weights_only: bool | None = None
    ) -> dict[str, Any]:
        # lit_ner's checkpoints hold tensors and plain values only: never unpickle code from a checkpoint file
        return super().load_checkpoint(path, map_location, True if weights_only is None else weights_only)
