"""`python -m benchmarks.quality`: lit_ner's dev F1 against the Hugging Face Trainer recipe's over several seeds, on
the same sentences, encoder, epochs, batch size, learning rate and weight decay. lit_ner runs with its own defaults as
one seed sweep (`-m seed=...`); the recipe with the Trainer's own (no warmup, random batches, clipping at 1.0), one
fresh process a seed, one side after the other. Prints mean ± sample std per side (docs/quality.md)."""

import argparse
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.measure import work_folder, encoder_or_default, write_bench_data
from lit_ner.sweeps import mean_std

ALL = 10**9  # "every sentence" for write_bench_data, which samples min(n, available)


def lit_ner_runs(args: argparse.Namespace, data: Path, work: Path) -> dict[int, tuple[float, float]]:
    """{seed: (best-epoch, last-epoch) val F1} of one `python -m lit_ner.train -m seed=...` sweep."""
    command = [
        sys.executable, "-m", "lit_ner.train", "-m", f"seed={','.join(map(str, args.seeds))}", "~experiment",
        "data=local", f"data.path={data}", f"model.model_name_or_path={args.model}", f"data.max_length={args.max_length}",
        f"data.batch_size={args.batch_size}", f"trainer.max_epochs={args.epochs}", f"model.lr={args.lr}",
        f"model.weight_decay={args.weight_decay}", f"trainer={'gpu' if args.device == 'cuda' else 'cpu'}",
        "test=false", "export=false", "demo_sentences=[]", f"data.cache_dir={work / 'cache'}",
        f"hydra.sweep.dir={work / 'lit_ner'}", "hydra.sweep.subdir=seed_${seed}", *args.overrides,
    ]  # fmt: skip
    with open(work / "lit_ner.log", "w", encoding="utf-8") as log:
        if subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"lit_ner failed: see {work / 'lit_ner.log'}")
    runs = {}
    for seed in args.seeds:
        metrics = json.loads((work / "lit_ner" / f"seed_{seed}" / "metrics.json").read_text(encoding="utf-8"))
        runs[seed] = (metrics["best"]["value"], metrics["scores"]["val/f1"])
    return runs


def recipe_runs(args: argparse.Namespace, data: Path, labels: list[str], work: Path) -> dict[int, tuple[float, float]]:
    """{seed: (best-epoch, last-epoch) validation F1} of the Trainer recipe, one process a seed."""
    runs = {}
    for seed in args.seeds:
        folder = work / f"recipe_seed_{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        job = {
            "work_dir": str(folder), "data_dir": str(data), "labels": labels, "model": args.model, "seed": seed,
            "lr": args.lr, "batch_size": args.batch_size, "epochs": args.epochs, "max_length": args.max_length,
            "weight_decay": args.weight_decay, "threads": None, "device": args.device, "precision": "default",
            "trainer_defaults": True, "result_file": str(folder / "result.json"),
        }  # fmt: skip
        (folder / "job.json").write_text(json.dumps(job), encoding="utf-8")
        with open(folder / "recipe.log", "w", encoding="utf-8") as log:
            command = [sys.executable, "-m", "benchmarks.recipe", str(folder / "job.json")]
            if subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode:
                raise SystemExit(f"the recipe failed: see {folder / 'recipe.log'}")
        history = json.loads((folder / "result.json").read_text(encoding="utf-8"))["f1_history"]
        runs[seed] = (max(history), history[-1])
    return runs


def welch_t(a: list[float], b: list[float]) -> float:
    """Welch's t of mean(a) - mean(b); nan below two values a side."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    return (statistics.mean(a) - statistics.mean(b)) / se if se else math.nan


def table(sides: dict[str, dict[int, tuple[float, float]]]) -> list[str]:
    rows = ["| side | n | dev F1, best epoch | dev F1, last epoch | per seed (best epoch) |", "|---|---:|---|---|---|"]
    for side, runs in sides.items():
        best, last = [b for b, _ in runs.values()], [x for _, x in runs.values()]
        per_seed = ", ".join(f"{seed}: {b:.4f}" for seed, (b, _) in runs.items())
        rows.append(f"| {side} | {len(runs)} | {mean_std(best)} | {mean_std(last)} | {per_seed} |")
    if len(sides) == 2:
        (a, ra), (b, rb) = sides.items()
        for i, what in ((0, "best"), (1, "last")):
            x, y = [v[i] for v in ra.values()], [v[i] for v in rb.values()]
            rows.append(
                f"\n{a} - {b}, {what} epoch: {statistics.mean(x) - statistics.mean(y):+.4f} (Welch t {welch_t(x, y):.2f})"
            )
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.quality", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", required=True, help="a folder lit_ner reads (CoNLL / JSON lines split files)")
    p.add_argument("--data-files", type=json.loads, default=None, help='split files, e.g. {"train": ["a.conll"]}')
    p.add_argument("--train-sentences", type=int, default=ALL, help="a sample of train (default: all)")
    p.add_argument("--eval-sentences", type=int, default=ALL, help="a sample of validation (default: all)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--model", default=None, help="encoder folder or Hub name (default: the packaged MiniLM)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--sides", nargs="+", choices=("lit_ner", "recipe"), default=["lit_ner", "recipe"])
    p.add_argument("--work-dir", default=None, help="default: outputs/quality/<time>")
    p.add_argument("overrides", nargs="*", help="more lit_ner.train overrides, e.g. data.bucket_batches=50")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.model = encoder_or_default(args.model)
    work = work_folder(args.work_dir, "quality")
    info = write_bench_data(work / "data", args.data, args.train_sentences, args.eval_sentences, 0, args.data_files)
    print(f"data: {info['source']}, sentences {info['sentences']}; work folder {work}", flush=True)
    sides = {}
    if "lit_ner" in args.sides:
        sides["lit_ner"] = lit_ner_runs(args, work / "data", work)
    if "recipe" in args.sides:
        sides["recipe"] = recipe_runs(args, work / "data", info["labels"], work)
    settings = (
        f"{Path(args.model).name}, {args.epochs} epochs, batch {args.batch_size}, lr {args.lr:g}, weight decay "
        f"{args.weight_decay:g}, seeds {' '.join(map(str, args.seeds))}; lit_ner overrides: {' '.join(args.overrides) or '-'}"
    )
    report = [f"data: {info['source']} {info['sentences']}", settings, "", *table(sides)]
    (work / "quality.md").write_text("\n".join(report) + "\n", encoding="utf-8")
    print("\n".join(report))


if __name__ == "__main__":
    main()
