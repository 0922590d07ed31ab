"""Experiment trackers (`logger=...`): Lightning's own loggers, plus what a run must keep across a resume. MLflow and
W&B runs have ids; they are written to `<run>/trackers.json` when the run starts, and a resumed run gives them back
to the same loggers, so it continues the same tracker run instead of starting a second one."""

import json
import logging
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from lit_ner import files
from lit_ner.app import build

log = logging.getLogger("lit_ner")
RUNS_FILE = "trackers.json"
# the constructor argument that names an existing run, per logger class (Lightning's names)
RUN_ID_ARGUMENT = {"MLFlowLogger": "run_id", "WandbLogger": "id"}


def build_loggers(cfg: DictConfig, run_dir: Path, resuming: bool) -> list[Logger]:
    """The configured loggers; on a resume, MLflow and W&B continue the run ids the run folder recorded."""
    saved = {}
    if resuming and (run_dir / RUNS_FILE).is_file():
        saved = json.loads((run_dir / RUNS_FILE).read_text(encoding="utf-8"))
    loggers = []
    for name, conf in cfg.get("logger", {}).items():
        kind = conf["_target_"].rsplit(".", 1)[-1]
        extra: dict[str, Any] = {}
        if name in saved and kind in RUN_ID_ARGUMENT:
            extra[RUN_ID_ARGUMENT[kind]] = saved[name]
            if kind == "WandbLogger":
                extra["resume"] = "must"  # wandb.init: continue this run, never start another under its id
            log.info("logger %s continues its run %s", name, saved[name])
        loggers.append(build(conf, **extra))
    return loggers


def run_ids(cfg: DictConfig, loggers: list[Logger]) -> dict[str, str]:
    """{config name: run id} of the loggers that have one (this starts their runs, on rank zero)."""
    ids = {}
    for name, logger in zip(cfg.get("logger", {}).keys(), loggers):
        kind = type(logger).__name__
        if kind == "MLFlowLogger":
            ids[name] = logger.run_id
        elif kind == "WandbLogger":
            ids[name] = logger.experiment.id
    return ids


def remember_runs(cfg: DictConfig, loggers: list[Logger], run_dir: Path) -> None:
    """Write the loggers' run ids into the run folder, where a resume finds them."""
    ids = run_ids(cfg, loggers)
    if ids:
        run_dir.mkdir(parents=True, exist_ok=True)
        files.write_text(run_dir / RUNS_FILE, json.dumps(ids, indent=1))


def record_export(loggers: list[Logger], folder: str, upload: bool) -> None:
    """Tell each tracker where the exported model is; with `upload`, also keep the folder itself (an MLflow
    artifact, a W&B model artifact)."""
    for logger in loggers:
        kind = type(logger).__name__
        if kind == "MLFlowLogger":
            logger.experiment.set_tag(logger.run_id, "lit_ner.export", folder)
            if upload:
                logger.experiment.log_artifacts(logger.run_id, folder, artifact_path="model")
        elif kind == "WandbLogger":
            import wandb

            logger.experiment.summary["export"] = folder
            if upload:
                artifact = wandb.Artifact(f"model-{logger.experiment.id}", type="model")
                artifact.add_dir(folder)
                logger.experiment.log_artifact(artifact)
