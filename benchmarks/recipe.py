"""The Hugging Face token-classification tutorial recipe, the baseline of `python -m benchmarks.train`.
`python -m benchmarks.recipe <job.json>` runs it as a script (the whole-command comparison)."""

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.measure import (
    Meter, best_time, check_same_scores, entity_metric_scores, first_subtoken_labels, peak_memory, seqeval_scores,
)  # fmt: skip


def run_recipe(job: dict[str, Any]) -> dict[str, Any]:
    """The Hugging Face token-classification tutorial: tokenize with truncation, first-sub-token labels,
    DataCollatorForTokenClassification, Trainer with random batches, seqeval on the full logits gathered to
    the host. lit_ner's optimisation defaults (weight decay 0.01, no warmup, clipping at 1.0, which is the
    Trainer's own) are set so that only the code path differs. With job["whole"]: also test and save the model.
    With job["trainer_defaults"] (the quality comparison, `benchmarks.quality`): the Trainer's own optimisation
    defaults besides weight decay 0.01 (no warmup), no checkpoints, and the result is each epoch's validation F1."""
    import numpy as np
    import torch
    from datasets import load_dataset
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    work, labels, whole = Path(job["work_dir"]) / "recipe", job["labels"], job.get("whole", False)
    defaults = job.get("trainer_defaults", False)
    label2id = {label: i for i, label in enumerate(labels)}
    splits = ("train", "validation", "test") if whole else ("train", "validation")
    files = {split: Path(job["data_dir"]) / f"{split}.jsonl" for split in splits}
    files = {split: str(path) for split, path in files.items() if path.exists()}  # a source may have no test
    raw = load_dataset("json", data_files=files, cache_dir=str(work / "datasets"))
    tokenizer = AutoTokenizer.from_pretrained(job["model"])

    def tokenize_and_align_labels(examples: dict[str, list]) -> Any:
        tokenized = tokenizer(
            examples["tokens"], truncation=True, max_length=job["max_length"], is_split_into_words=True
        )
        tokenized["labels"] = [
            first_subtoken_labels(tokenized.word_ids(batch_index=i), tags, label2id)
            for i, tags in enumerate(examples["tags"])
        ]
        return tokenized

    tokenized = raw.map(tokenize_and_align_labels, batched=True)
    import seqeval.metrics  # noqa: F401  the tutorial loads it up front: keep the import out of the timings

    seen: dict[str, Any] = {}

    def compute_metrics(prediction: Any) -> dict[str, float]:
        logits, label_ids = prediction
        pred_ids = np.argmax(logits, axis=2)
        scores = seqeval_scores(pred_ids, label_ids, labels)
        seen.update(pred_ids=pred_ids, label_ids=label_ids, scores=scores)
        seen.setdefault("f1_history", []).append(scores["f1"])
        return scores

    set_seed(job["seed"])
    model = AutoModelForTokenClassification.from_pretrained(
        job["model"], num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )
    args = TrainingArguments(
        output_dir=str(work / "checkpoints"),
        learning_rate=job["lr"],
        per_device_train_batch_size=job["batch_size"],
        per_device_eval_batch_size=job["batch_size"],
        num_train_epochs=job["epochs"],
        weight_decay=job.get("weight_decay", 0.01),
        warmup_steps=0,  # lit_ner's default (model.warmup_ratio=0) and the Trainer's
        eval_strategy="epoch",
        save_strategy="no" if defaults else "epoch",
        load_best_model_at_end=not defaults,
        seed=job["seed"],
        use_cpu=job["device"] == "cpu",
        bf16=job["precision"] == "bf16",
        report_to="none",
    )
    meter = Meter(job["device"] == "cuda")
    meter.attach(model)

    class MeterCallback(TrainerCallback):
        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            meter.epoch_start()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            meter.step_end()

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            meter.epoch_end()  # the epoch's evaluation and checkpoint come after this

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        compute_metrics=compute_metrics,
        callbacks=[MeterCallback()],
    )
    evaluate = trainer.evaluate

    def timed_evaluate(*args: Any, **kwargs: Any) -> dict[str, float]:
        meter.eval_start()
        metrics = evaluate(*args, **kwargs)
        meter.eval_end()
        return metrics

    trainer.evaluate = timed_evaluate  # the Trainer's own epoch-end evaluation calls self.evaluate
    trainer.train()
    if defaults:
        return {"f1_history": seen["f1_history"]}
    if whole:
        result = {"dev_f1": seen["f1_history"][-1]}  # the last epoch's, as the Trainer reports it
        if "test" in tokenized:
            result["test_f1"] = trainer.evaluate(tokenized["test"], metric_key_prefix="test")["test_f1"]
        trainer.save_model(str(work / "model"))
        return result
    result = {**meter.result(), "f1": seen["scores"]["f1"], **peak_memory(meter.cuda)}
    # the metric row: seqeval as the recipe's compute_metrics runs it, and EntityMetric, on the same predictions
    pred_ids, label_ids = seen["pred_ids"], seen["label_ids"]
    seqeval_seconds, _ = best_time(lambda: seqeval_scores(pred_ids, label_ids, labels))
    entity_seconds, entity = best_time(lambda: entity_metric_scores(pred_ids, label_ids, labels, 2 * job["batch_size"]))
    check_same_scores(seen["scores"], entity, "the recipe's validation predictions")
    return result | {"seqeval_seconds": seqeval_seconds, "entity_metric_seconds": entity_seconds}


if __name__ == "__main__":
    recipe_job = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    recipe_result = run_recipe(recipe_job)
    if recipe_job.get("result_file"):
        Path(recipe_job["result_file"]).write_text(json.dumps(recipe_result), encoding="utf-8")
