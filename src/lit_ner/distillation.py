"""Distillation's teacher: the checks that it can teach the model (`checked_teacher`), and the unlabelled sentences
it tags for the student (`teacher_tagged`), written into the run folder as a training file that the data reads beside
its own (data.extra_train)."""

import json
import logging
import time
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from lit_ner import files
from lit_ner.data.schemes import split_tag
from lit_ner.data.unlabelled import unlabelled_sentences
from lit_ner.errors import ConfigError, RunError
from lit_ner.models import EXPORTED, ModelInfo, inspect_model
from lit_ner.predictor import NerPredictor

log = logging.getLogger("lit_ner")
TAGGED = Path("distill") / "unlabelled.jsonl"  # in the run folder: the teacher's tags of distill.unlabelled


def checked_teacher(cfg: DictConfig, labels: list[str], head: str) -> dict[str, Any] | None:
    """The distill settings the model takes when distill.teacher is set, once the teacher is known to be a trained
    token head with the data's labels (`teacher_model`)."""
    distill = cfg.get("distill") or {}
    if not distill.get("teacher"):
        return None
    info = teacher_model(cfg, head, labels)
    return {"teacher": info.source, "temperature": float(distill.temperature), "alpha": float(distill.alpha)}


def teacher_model(cfg: DictConfig, head: str, labels: list[str] | None) -> ModelInfo:
    """distill.teacher, once it is known to be an export of a trained token head (a plain encoder would teach random
    tags) for a token head (`head`), with `labels` (None: not known yet), and alpha and temperature in range."""
    distill = cfg.distill
    info = inspect_model(str(distill.teacher), EXPORTED)
    teacher_head = (info.head or {}).get("name", "token")
    if head != "token" or info.kind != "export" or teacher_head != "token":
        what = {"encoder": "an encoder without a trained head", "checkpoint": "a checkpoint (give <run>/model)"}
        raise ConfigError(
            f"distill.teacher={distill.teacher}: distillation reads a trained token head's tag probabilities; give "
            f"an export of head=token (it is {what.get(info.kind, f'an export of head={teacher_head}')}) and train "
            f"head=token (now head={head})"
        )
    if labels is not None and info.labels != labels:
        raise ConfigError(f"distill.teacher={distill.teacher}: the teacher's labels {info.labels} differ from the "
                          f"data's {labels}; give a teacher trained on these labels")  # fmt: skip
    if not 0.0 <= distill.alpha <= 1.0 or distill.temperature <= 0:
        raise ConfigError(f"distill.alpha={distill.alpha} must lie in [0, 1] and distill.temperature="
                          f"{distill.temperature} above 0")  # fmt: skip
    return info


def teacher_tagged(cfg: DictConfig, run_dir: Path, resuming: bool) -> list[str]:
    """With distill.unlabelled, the training file of its sentences with the teacher's tags, in a list (the extra
    training files it adds to data.extra_train); without, none. The file is written once, by the first process: a
    resumed run reads it again, and the other processes of a run wait for it."""
    distill = cfg.get("distill") or {}
    if not distill.get("unlabelled"):
        return []
    if not distill.get("teacher"):
        raise ConfigError(f"distill.unlabelled={distill.unlabelled}: the teacher tags these sentences; set "
                          "distill.teacher=<export> too, or leave distill.unlabelled out")  # fmt: skip
    path = run_dir / TAGGED
    if resuming and path.exists():
        log.info("distill.unlabelled: reading the teacher's tags written when the run started, %s", path)
    elif rank_zero_only.rank == 0:
        write_tagged(cfg, path)
    else:
        wait_for(path)
    return [str(path)]


def write_tagged(cfg: DictConfig, path: Path) -> None:
    """Tag distill.unlabelled's sentences with the teacher, read as predict reads them: each word's arg-max tag (the
    "gold" of the student's loss, its `alpha` share; the KL reads the probabilities themselves). JSON lines of the
    data's `tokens_field` and `tags_field`, tags in data.train_scheme (bare labels for data.scheme=plain)."""
    data, distill = cfg.data, cfg.distill
    head = (cfg.model.get("head") or {}).get("name", "token")
    teacher = teacher_model(cfg, head, list(data.labels) if data.get("labels") else None)  # before any work
    if data.format not in ("auto", "json"):
        raise ConfigError(f"distill.unlabelled: the teacher's tags are written as JSON lines, which data.format="
                          f"{data.format} does not read; set data.format=auto")  # fmt: skip
    given = list(distill.unlabelled) if OmegaConf.is_list(distill.unlabelled) else [distill.unlabelled]
    sentences, documents = unlabelled_sentences([Path(f).expanduser() for f in given], data.pretokenizer,
                                                distill.token_prefix)  # fmt: skip
    # min_score 0 keeps every entity: the arg-max tags, whatever thresholds the export stores
    predictor = NerPredictor.from_pretrained(teacher.source, min_score=0.0)
    tagged = predictor.word_tags(sentences, progress=True, documents=documents)
    fields = data.tokens_field, data.tags_field or "tags"
    lines = []
    for words, decoded, document in zip(sentences, tagged, documents):
        tags = [split_tag(t)[1] or "O" for t in decoded.tags] if data.scheme == "plain" else decoded.tags
        lines.append(json.dumps({fields[0]: words, fields[1]: tags, "document": document}, ensure_ascii=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_text(path, "".join(line + "\n" for line in lines))
    log.info("distill.unlabelled: the teacher tagged %d sentences (%d words) into %s, which join the training split",
             len(sentences), sum(map(len, sentences)), path)  # fmt: skip


def wait_for(path: Path, timeout: float = 6 * 3600, poll: float = 2.0) -> None:
    """In the processes that do not tag: wait until the first process has written the teacher's tags."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RunError(f"{path} did not appear within {timeout:.0f} s; the first process tags distill.unlabelled: "
                           "see its log for the error (the run folder must be the same for all processes)")  # fmt: skip
        time.sleep(poll)
