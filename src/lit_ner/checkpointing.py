"""Checkpoint files: kill-safe writes (a temporary name beside the target, flushed to disk, then renamed over it, so a
kill at any moment leaves the old checkpoint or the new one), safe reads (`weights_only`, checked before any work),
and the resume rules (what a resumed run must share with the checkpoint)."""

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf

from lit_ner import files
from lit_ner.errors import ConfigError, space_for
from lit_ner.module import TRAINER_KEY


def tensor_bytes(tree: Any) -> int:
    """The bytes of every tensor in a nested checkpoint: about what `torch.save` writes."""
    if isinstance(tree, torch.Tensor):
        return tree.numel() * tree.element_size()
    if isinstance(tree, dict):
        return sum(tensor_bytes(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(tensor_bytes(v) for v in tree)
    return 0


def atomic_save(checkpoint: dict[str, Any], path: Path) -> None:
    """`torch.save` under a temporary name in the same folder, flushed to disk, then renamed over `path`
    (`lit_ner.files.replaced`): the rename is atomic only within one file system, hence the same folder. What a
    killed write leaves is removed by the next save. A full disk stops the run with the size the checkpoint needs;
    the previous checkpoint stays as it was and nothing half-written is left."""
    then = f"resume with ckpt_path={path.parent.parent if path.parent.name == 'checkpoints' else path}"
    with space_for(f"the checkpoint {path.name}", path.parent, tensor_bytes(checkpoint), then):
        with files.writing(path, "wb") as f:
            torch.save(checkpoint, f)


def saved_step(path: str | Path) -> int | None:
    """The global step a checkpoint was written at, without reading its tensors (they stay memory-mapped)."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("global_step")


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


def resolve_checkpoint(ckpt_path: str | None) -> tuple[Path | None, Path | None]:
    """The checkpoint file to resume from and its run folder: a run folder means its checkpoints/last.ckpt."""
    if ckpt_path is None:
        return None, None
    path = Path(ckpt_path).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: no checkpoint at {path}. Give a .ckpt file or a run folder.")
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
    return path, run_dir


def checkpoint_labels(path: Path) -> list[str]:
    """The labels a lit_ner checkpoint was trained with; a file that is not one stops the run before any work."""
    return list(read_checkpoint(path)["hyper_parameters"]["labels"])


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A lit_ner training checkpoint, checked and loaded safely (its tensors memory-mapped, not read)."""
    fix = "Resume from another checkpoint of the run (checkpoints/best.ckpt) or start a new run without ckpt_path."
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-short one has no central directory
        raise ConfigError(
            f"ckpt_path={path} is not a PyTorch checkpoint (no complete zip archive: cut short, or another kind "
            f"of file). {fix}"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()  # torch.load checks no CRC: damaged tensor bytes would load as wrong weights
    except (zipfile.BadZipFile, OSError) as err:
        damaged = f"({err})"
    if damaged is not None:
        raise ConfigError(f"ckpt_path={path} is damaged: its entry {damaged} fails the zip integrity check. {fix}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        raise ConfigError(
            f"ckpt_path={path} holds objects other than tensors and plain values, and lit_ner loads checkpoints "
            f"with weights_only=True (unpickling them could run code). {fix}"
        ) from None
    except Exception as err:  # a damaged archive
        reason = (str(err).strip().splitlines() or [""])[0]
        raise ConfigError(
            f"ckpt_path={path} cannot be read as a checkpoint ({type(err).__name__}: {reason}). {fix}"
        ) from None
    labels = checkpoint.get("hyper_parameters", {}).get("labels") if isinstance(checkpoint, dict) else None
    if not isinstance(labels, list) or "state_dict" not in checkpoint:
        raise ConfigError(
            f"ckpt_path={path} is not a lit_ner training checkpoint (no state_dict and hyper_parameters.labels). "
            "Give a run folder or its checkpoints/last.ckpt; to start from exported weights, set "
            "model.model_name_or_path=<export folder> instead."
        )
    return checkpoint


# Lightning's short names for trainer.precision
PRECISION_ALIASES = {"64": "64-true", "32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed"}

# settings that may differ on resume without changing what is trained: where things are, how many workers;
# extra_train names files too, and distillation adds its own there (lit_ner.distillation), which a resume reads again
RESUME_FREE = {"labels", "compile", "cache_dir", "num_workers", "path", "eval_batch_size", "tokenizer_name_or_path",
               "extra_train"}  # fmt: skip


def check_resume_config(checkpoint: dict[str, Any], cfg: DictConfig, ckpt: Path) -> None:
    """A resume must train what the checkpoint trained: a different encoder, recipe or data encoding would give a
    cryptic state-dict error or a silently inexact run. Stop with the keys that differ."""
    differ = []
    for group, saved in (("model", "hyper_parameters"), ("data", "datamodule_hyper_parameters")):
        now = OmegaConf.to_container(cfg[group], resolve=True)
        for key, shown in checkpoint.get(saved, {}).items():
            if key in RESUME_FREE or key not in now:
                continue
            then, value = shown, now[key]
            if key == "model_name_or_path":  # a folder may move (another virtual environment): compare names
                then, value = Path(str(then)).name, Path(str(value)).name
            if key == "head":  # its null options are filled from the data (lit_ner.heads.configured): the given ones
                value = {k: v for k, v in (value or {}).items() if v is not None}
                then = {k: v for k, v in (then or {"name": "token"}).items() if k in value}
            if then != value:
                differ.append(f"{group}.{key}={now[key]} (the checkpoint has {shown})")
    planned = checkpoint.get(TRAINER_KEY, {})  # none in checkpoints older than lit_ner 0.1.2
    why = ""
    for key in ("max_epochs", "max_steps", "accumulate_grad_batches"):
        if key in planned and cfg.trainer.get(key, planned[key]) != planned[key]:
            differ.append(f"trainer.{key}={cfg.trainer[key]} (the checkpoint has {planned[key]})")
            why = (
                f" Its learning-rate schedule was laid out for {planned['schedule_steps']} optimizer steps at the "
                "start: more epochs or another accumulation would make it jump, not extend. To train more, start a "
                "new run from its export (model.model_name_or_path=<run>/model)."
            )
    # the default precision depends on the machine: a run resumed on another must keep the one it started with
    precision = PRECISION_ALIASES.get(str(cfg.trainer.get("precision")), str(cfg.trainer.get("precision")))
    if "precision" in planned and precision != planned["precision"]:
        differ.append(f"trainer.precision={precision} (the checkpoint has {planned['precision']})")
        why += f" To resume it exactly here, add trainer.precision={planned['precision']}."
    if differ:
        raise ConfigError(
            f"ckpt_path={ckpt} was trained with other settings: {'; '.join(differ)}. Resume with the original "
            "experiment and overrides (listed in <run>/.hydra/overrides.yaml), or start a new run without ckpt_path."
            + why
        )


@dataclass(frozen=True)
class Resume:
    """Where a resumed run starts: the checkpoint file, its run folder (None for a file outside one), its labels."""

    checkpoint: Path
    run_dir: Path | None
    labels: list[str]

    def check_labels(self, labels: list[str]) -> None:
        """The data must have the labels the checkpoint was trained with, in the same order."""
        if labels != self.labels:
            raise ConfigError(
                f"the checkpoint {self.checkpoint} was trained with labels {self.labels}, the data has {labels}. "
                "To train on these labels from its weights, export the model and start a new run with "
                "model.model_name_or_path=<export> label_mismatch=reinit (or remap, for a new order)."
            )


def resume_point(cfg: DictConfig) -> Resume | None:
    """The checkpoint `cfg.ckpt_path` names, read and checked against `cfg` before any work; None for a new run."""
    path, run_dir = resolve_checkpoint(cfg.get("ckpt_path"))
    if path is None:
        return None
    saved = read_checkpoint(path)  # an unreadable file stops here, first
    check_resume_config(saved, cfg, path)
    return Resume(path, run_dir, list(saved["hyper_parameters"]["labels"]))
