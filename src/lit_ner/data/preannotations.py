"""Label Studio tasks and doccano lines out: corpora as annotated tasks, and tasks to label pre-annotated with a
model's entities, scored so that the ones the model is least sure of come first. Reading exports back is
`lit_ner.data.annotation`."""

import copy
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from lit_ner.data.annotation import task_name, task_text
from lit_ner.data.formats import _iter_json
from lit_ner.data.schemes import entity_spans
from lit_ner.data.words import split_words
from lit_ner.errors import DataError


class Task(NamedTuple):
    """A task to pre-annotate: its text, the task as read (always with a `data` object), and where it was."""

    text: str
    task: dict[str, Any]
    where: str


# ---- Corpora to Label Studio tasks


def conll_to_label_studio(
    tokens: Sequence[str], tags: Sequence[str], from_name: str = "label", to_name: str = "text"
) -> dict[str, Any]:
    """A Label Studio task of one sentence: the words joined by single spaces, each entity a region; the words
    ride along as `data.tokens` when the pre-tokenizer would split the text otherwise, so they read back as given."""
    text = " ".join(tokens)
    starts = [0]
    for token in tokens:
        starts.append(starts[-1] + len(token) + 1)
    data: dict[str, Any] = {"text": text}
    if [word for word, _, _ in split_words(text)] != list(tokens):
        data["tokens"] = list(tokens)
    result = []
    for n, (label, first, stop) in enumerate(entity_spans(tags)):
        chunk = text[starts[first] : starts[stop] - 1]
        start = starts[first] + len(chunk) - len(chunk.lstrip())
        end = starts[stop] - 1 - (len(chunk) - len(chunk.rstrip()))
        if start >= end:
            raise DataError(f"entity {label} of words {list(tokens[first:stop])} has no character to mark")
        value = {"start": start, "end": end, "text": text[start:end], "labels": [label]}
        result.append({"id": f"e{n}", "from_name": from_name, "to_name": to_name, "type": "labels", "value": value})
    return {"data": data, "annotations": [{"result": result}]}


def label_config(
    labels: Sequence[str], from_name: str = "label", to_name: str = "text", text_field: str = "text"
) -> str:
    """The Label Studio labelling config the written tasks assume: a Labels control `from_name` (one Label a type)
    over the Text `to_name`, which shows the task's `data.<text_field>`."""
    choices = "".join(f'<Label value="{html.escape(label)}"/>' for label in labels)
    return (
        f'<View><Labels name="{from_name}" toName="{to_name}">{choices}</Labels>'
        f'<Text name="{to_name}" value="${text_field}"/></View>'
    )


# ---- Pre-annotations out


def read_tasks(file: str | Path, text_field: str | None = None) -> list[Task]:
    """The tasks of a Label Studio tasks file (a JSON list or JSON lines; a task without `data` is its data, as
    Label Studio imports it), each with its text."""
    tasks = []
    for n, (where, record) in enumerate(_iter_json(Path(file))):
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a task object, got {type(record).__name__}")
        task = dict(record) if isinstance(record.get("data"), dict) else {"data": record}
        where = f"{where} ({task_name(task, n)})"
        tasks.append(Task(task_text(task["data"], where, text_field), task, where))
    if not tasks:
        raise DataError(f"{file}: no tasks; write a JSON list of tasks such as [{{\"data\": {{\"text\": \"...\"}}}}]")
    return tasks


def task_score(entities: Sequence[Mapping[str, Any]], confidence: float | None = None) -> float:
    """How sure the model is of a task: the lowest of its entity scores and `confidence` (the task's lowest word
    confidence, where the predictor gives one: it also catches entities nearly found); 1.0 with neither, so tasks
    the model says nothing about come last. Lower is more worth labelling."""
    scores = [float(entity["score"]) for entity in entities]
    return min([*scores, float(confidence)] if confidence is not None else scores, default=1.0)


def label_studio_predictions(
    tasks: Sequence[Task],
    entities: Sequence[Sequence[Mapping[str, Any]]],
    model_version: str,
    confidences: Sequence[float | None] | None = None,
    from_name: str = "label",
    to_name: str = "text",
) -> list[dict[str, Any]]:
    """The tasks with one Label Studio prediction each, in place of any: a `labels` region per entity ({"text", "type",
    "start", "end", "score"}, offsets into the task's text) and a `score`, `task_score`: a confidence, as Label Studio
    reads it (its uncertainty sampling serves the lowest first; in the Data Manager sort by it ascending)."""
    if len(entities) != len(tasks) or (confidences is not None and len(confidences) != len(tasks)):
        raise ValueError(f"{len(tasks)} tasks but {len(entities)} entity lists (and confidences: {confidences!r})")
    written = []
    for n, (task, found) in enumerate(zip(tasks, entities)):
        result = []
        for i, entity in enumerate(found):
            start, end = _entity_offsets(task, entity)
            value = {"start": start, "end": end, "text": task.text[start:end], "labels": [entity["type"]]}
            result.append({"id": f"e{i}", "from_name": from_name, "to_name": to_name, "type": "labels",
                           "value": value, "score": float(entity["score"])})  # fmt: skip
        score = task_score(found, None if confidences is None else confidences[n])
        prediction = {"model_version": model_version, "score": score, "result": result}
        written.append({**copy.deepcopy(task.task), "predictions": [prediction]})
    return written


def doccano_records(tasks: Sequence[Task], entities: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """doccano JSONL lines of predicted entities: `text` and `label`: [[start, end, type], ...]."""
    if len(entities) != len(tasks):
        raise ValueError(f"{len(tasks)} tasks but {len(entities)} entity lists")
    return [
        {"text": task.text, "label": [[*_entity_offsets(task, e), e["type"]] for e in found]}
        for task, found in zip(tasks, entities)
    ]


def _entity_offsets(task: Task, entity: Mapping[str, Any]) -> tuple[int, int]:
    start, end = entity.get("start"), entity.get("end")
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(task.text)):
        raise DataError(f"{task.where}: predicted entity {dict(entity)!r} lies outside the text "
                        f"({len(task.text)} characters)")  # fmt: skip
    return start, end
