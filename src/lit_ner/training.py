"""The training recipe every entry point runs (`python -m lit_ner.train`, `lit_ner.train(...)`, the active-learning
rounds, the benchmarks): seed, data, model, fit, test on the best checkpoint, export, summarise."""

import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from lit_ner import files
from lit_ner.app import build, check_writable
from lit_ner.calibration import validation_temperature
from lit_ner.checkpointing import resume_point, saved_step
from lit_ner.distillation import checked_teacher, teacher_tagged
from lit_ner.export import export_model
from lit_ner.heads import configure_head
from lit_ner.hub import check_upload, upload_or_explain
from lit_ner.reports import entity_rows, markdown_table
from lit_ner.trackers import build_loggers, record_export, remember_runs

log = logging.getLogger("lit_ner")


def train(cfg: DictConfig, callbacks: list[Callback] = ()) -> dict[str, Any]:
    """The whole job, callable in-process (tests, notebooks and the benchmark compose a config and call this);
    `callbacks` join the configured ones (the benchmark's meter)."""
    started = time.perf_counter()
    resume = resume_point(cfg)  # an unreadable checkpoint, or one trained with other settings, stops here, first
    if resume is not None and resume.run_dir is not None:
        cfg.run_dir = str(resume.run_dir)  # the resumed run continues in its own folder and TensorBoard run
    run_dir = Path(cfg.run_dir)
    check_writable(run_dir, "run_dir")
    if cfg.hub.repo_id:  # an upload that cannot work from here stops the run now, not after hours of training
        check_upload(cfg.hub.repo_id)
    L.seed_everything(cfg.seed, workers=True)

    # distill.unlabelled: its sentences with the teacher's tags, a training file of the run folder the data reads
    extra_train = [*(cfg.data.extra_train or []), *teacher_tagged(cfg, run_dir, resuming=resume is not None)]
    # plain lists and dicts: checkpoints load with weights_only
    datamodule = build(cfg.data, extra_train=extra_train, _convert_="all")
    configured = {name: build(c) for name, c in cfg.get("callbacks", {}).items()}
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=list(configured.values()) + list(callbacks),
        logger=build_loggers(cfg, run_dir, resuming=resume is not None) or False,
    )
    if trainer.is_global_zero:  # MLflow / W&B run ids, so that a resume continues the same tracker runs
        remember_runs(cfg, trainer.loggers, run_dir)
    # one process per node reads and encodes the data; the others wait for its cache (under torchrun or SLURM
    # every process starts at once; Lightning's own launcher starts them later, inside fit)
    if trainer.local_rank == 0:
        datamodule.prepare_data()
    else:
        datamodule.wait_for_cache()
    if resume is not None:
        resume.check_labels(datamodule.labels)
    head = configure_head(cfg.model.get("head"), datamodule.train_sentences)  # e.g. a span head's widest span, from the data
    distill = checked_teacher(cfg, datamodule.labels, head["name"])
    model = build(cfg.model, labels=datamodule.labels, head=head, distill=distill, _convert_="all")
    datamodule.check_packing(model.model)

    trainer.fit(model, datamodule=datamodule, ckpt_path=str(resume.checkpoint) if resume else None)
    checkpoint = configured.get("model_checkpoint")  # best.ckpt (callbacks/default.yaml)
    best_path = checkpoint.best_model_path if checkpoint else ""
    # the best weights, read back from best.ckpt unless it was written at the last step: then they are the model's
    reload = best_path if best_path and saved_step(best_path) != trainer.global_step else None
    scores = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.test and datamodule.datasets.get("test") is not None:
        trainer.test(model, datamodule=datamodule, ckpt_path=reload, verbose=False)
        scores |= {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    elif reload:
        model.load_state_dict(torch.load(reload, map_location="cpu", weights_only=True)["state_dict"])

    best = checkpoint.best_model_score if checkpoint else None
    result = {
        # the best.ckpt epoch's optimized_metric: what was tested and exported, and what a sweep compares
        "best": {"metric": cfg.optimized_metric, "value": None if best is None else float(best)},
        "best_checkpoint": best_path,
        "scores": scores,
        "seconds": round(time.perf_counter() - started, 1),
        "run_dir": str(run_dir),
    }
    if trainer.is_global_zero:
        finish(cfg, trainer, model, datamodule, result)
    return result


def replayable(result: dict[str, Any], model: Any) -> list:
    """The validation batches training read with the exported weights (the best epoch by val/f1), if the best
    checkpoint is that epoch's; else none, and the temperature reads the split again."""
    f1, batches = model.best_validation
    best = result["best"]
    return batches if best["metric"] == "val/f1" and best["value"] is not None and best["value"] == f1 else []


def finish(cfg: DictConfig, trainer: L.Trainer, model: Any, datamodule: Any, result: dict[str, Any]) -> None:
    """Rank zero only: export, record hyper-parameters with the final metrics, write and print the summary."""
    run_dir = Path(cfg.run_dir)
    scores = result["scores"]
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    if cfg.export:
        name = cfg.hub.repo_id or run_dir.name
        # scores that mean what they say: the temperature that fits the validation entities, applied by every reader
        # (on the device training used: Lightning's teardown has moved the model to the CPU)
        device = trainer.strategy.root_device
        temperature = validation_temperature(model.model.to(device), model.head.to(device), datamodule,
                                             replayable(result, model))  # fmt: skip
        calibration = {"temperature": temperature}
        folder = export_model(
            model, datamodule.tokenizer, run_dir / "model", data_cfg, scores, datamodule.meta, name, command_line(),
            calibration,
        )
        result["export"] = str(folder)
        record_export(trainer.loggers, str(folder), upload=cfg.log_export)
        if cfg.hub.repo_id:
            result["hub"] = upload_or_explain(folder, cfg.hub.repo_id, cfg.hub.private)
    # the best epoch's optimized_metric (hp/val_f1 for val/f1; the checkpoint that was tested and exported), not the
    # last epoch's
    best = result["best"]
    final = {f"hp/{best['metric'].replace('/', '_')}": best["value"], "hp/test_f1": scores.get("test/f1")}
    final = {k: v for k, v in final.items() if v is not None}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):  # the HPARAMS tab: hyper-parameters next to the final scores
            logger.log_hyperparams(flat_params(cfg), final)
        else:
            logger.log_hyperparams(flat_params(cfg))
            logger.log_metrics(final, step=trainer.global_step)
        logger.save()
    files.write_text(run_dir / "metrics.json", json.dumps(result, indent=1))

    lines = [f"\nlit_ner finished in {result['seconds']:.0f} s", f"  run folder   {run_dir}"]
    if result["best_checkpoint"]:
        lines.append(f"  checkpoints  {Path(result['best_checkpoint']).parent} (best.ckpt, last.ckpt)")
    if any(isinstance(logger, TensorBoardLogger) for logger in trainer.loggers):
        lines.append(f"  tensorboard  tensorboard --logdir {run_dir / 'tensorboard'}")
    if "export" in result:
        readers = "transformers.pipeline / lit_ner.predict" if model.head.name == "token" else "lit_ner.predict"
        lines.append(f"  model        {result['export']}  ({readers})")
    if "hub" in result:
        lines.append(f"  hub          {result['hub']}")
    if best["value"] is not None:
        lines.append(f"  best {best['metric']}  {best['value']:.4f}")
    advice = zero_f1_advice(cfg, trainer, result)
    if advice:
        log.warning(advice)
        lines += ["", f"WARNING: {advice}"]
    rows = entity_rows(scores, "test")
    if rows:
        lines += ["", "test scores (entity level):", markdown_table(rows)]
    print("\n".join(lines))
    if cfg.demo_sentences and "export" in result:
        demo(result["export"], list(cfg.demo_sentences))


def command_line() -> str | None:
    """The command that trained the model, for its card: the overrides Hydra was given."""
    if not HydraConfig.initialized():
        return None
    return " ".join(["python -m lit_ner.train", *HydraConfig.get().overrides.task])


def zero_f1_advice(cfg: DictConfig, trainer: L.Trainer, result: dict[str, Any]) -> str | None:
    """A run whose best val/f1 is 0 has learnt nothing usable, most often "O" everywhere: say so, and why."""
    if result["best"] != {"metric": "val/f1", "value": 0.0}:
        return None
    predicted = result["scores"].get("val/predicted_entities")
    what = "the model predicted no entity at all" if not predicted else f"none of its {predicted:.0f} predicted entities"
    what += " in the last validation" if not predicted else " was right in the last validation"
    return (
        f"best val/f1 is 0.000: {what}. Likely causes: too few optimizer steps ({trainer.global_step} in all), or a "
        f"learning rate that does not suit this encoder (model.lr={cfg.model.lr} for {cfg.model.model_name_or_path}), "
        "most often too low: each conf/model config carries its encoder's lr (minilm 1e-4, bert-base 2e-5 to 5e-5), "
        "and model.model_name_or_path=<another encoder> keeps the chosen config's. Try more epochs "
        "(trainer.max_epochs) or a higher model.lr."
    )


def demo(folder: str, sentences: list[str]) -> None:
    from lit_ner.predictor import NerPredictor

    predictor = NerPredictor.from_pretrained(folder, device="cpu")
    for sentence, entities in zip(sentences, predictor(sentences)):
        found = ", ".join(f"{e['text']!r} {e['type']} ({e['score']:.2f})" for e in entities)
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
