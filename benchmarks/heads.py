"""`python -m benchmarks.heads --data <folder> --heads token span --seeds 1 2 3`: the heads side by side on the same
data, encoder, epochs, batch size and learning rate. Each head trains as one seed sweep of `python -m lit_ner.train`
(its own defaults otherwise), each export is read by `lit_ner.evaluate` on the validation split (the reading predict
and the service return), and one table gives per head the mean ± sample std over seeds of: exact-span F1 over every
gold entity (nested ones included), recall of the gold entities that sit inside another, and the seconds of the
training command and of evaluate's reading (docs/quality.md, docs/benchmarks.md)."""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.measure import work_folder, encoder_or_default
from lit_ner.sweeps import mean_std


def train_head(args: argparse.Namespace, head: str, work: Path) -> dict[int, dict]:
    """{seed: the run's metrics.json} of one sweep over the seeds with this head; each run exports its model. A head
    whose every seed already has its metrics.json in the work folder (an earlier, interrupted benchmark) is not
    trained again."""
    done = {seed: work / head / f"seed_{seed}" / "metrics.json" for seed in args.seeds}
    if all(path.exists() for path in done.values()):
        print(f"{head}: reusing the runs in {work / head}", flush=True)
        return {seed: json.loads(path.read_text()) for seed, path in done.items()}
    command = [
        sys.executable, "-m", "lit_ner.train", "-m", f"seed={','.join(map(str, args.seeds))}", "~experiment",
        "data=local", f"data.path={args.data}", f"head={head}", f"model.model_name_or_path={args.model}",
        f"data.batch_size={args.batch_size}", f"trainer.max_epochs={args.epochs}", f"model.lr={args.lr}",
        "trainer=cpu", "test=false", "demo_sentences=[]", f"data.cache_dir={work / 'cache'}",
        f"hydra.sweep.dir={work / head}", "hydra.sweep.subdir=seed_${seed}", *args.overrides,
    ]  # fmt: skip
    with open(work / f"{head}.log", "w", encoding="utf-8") as log:
        if subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"lit_ner.train with head={head} failed: see {work / f'{head}.log'}")
    return {seed: json.loads(path.read_text()) for seed, path in done.items()}


def evaluate_export(args: argparse.Namespace, export: Path, out: Path, cache: Path) -> tuple[dict, float]:
    """evaluate's report on the validation split, and the seconds evaluate took."""
    from lit_ner.app import compose_config
    from lit_ner.evaluate import evaluate

    overrides = [f"model.model_name_or_path={export}", f"output_dir={out}", "data=local", f"data.path={args.data}",
                 f"data.cache_dir={cache}", "split=validation", "calibrate=false"]  # fmt: skip
    started = time.perf_counter()
    report = evaluate(compose_config("evaluate", overrides))
    return report, time.perf_counter() - started


def table(results: dict[str, dict[int, dict]]) -> list[str]:
    rows = ["| head | n | dev F1 (exact spans, all entities) | recall of entities inside another | train s | "
            "evaluate s | per seed F1 |", "|---|---:|---|---|---:|---:|---|"]  # fmt: skip
    for head, runs in results.items():
        f1 = [r["f1"] for r in runs.values()]
        inner = [r["inner_recall"] for r in runs.values() if r["inner_recall"] is not None]
        per_seed = ", ".join(f"{seed}: {r['f1']:.4f}" for seed, r in runs.items())
        rows.append(f"| {head} | {len(runs)} | {mean_std(f1)} | {mean_std(inner) if inner else '-'} | "
                    f"{statistics.mean(r['train_s'] for r in runs.values()):.0f} | "
                    f"{statistics.mean(r['evaluate_s'] for r in runs.values()):.1f} | {per_seed} |")  # fmt: skip
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.heads", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--data", required=True, help="a folder lit_ner reads (data=local): CoNLL or JSON lines split files")
    p.add_argument("--heads", nargs="+", default=["token", "crf", "span"])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--model", default=None, help="encoder folder or Hub name (default: the packaged MiniLM)")
    p.add_argument("--work-dir", default=None, help="default: outputs/heads/<time>")
    p.add_argument("overrides", nargs="*", help="more lit_ner.train overrides, e.g. model.head.max_width=8")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.model = encoder_or_default(args.model)
    work = work_folder(args.work_dir, "heads")
    print(f"data: {args.data}; work folder {work}", flush=True)
    results: dict[str, dict[int, dict]] = {}
    for head in args.heads:
        runs = train_head(args, head, work)
        results[head] = {}
        for seed, metrics in runs.items():
            report, seconds = evaluate_export(args, Path(metrics["export"]), work / head / f"seed_{seed}" / "eval",
                                              work / "cache")  # fmt: skip
            nested = report["scores"].get("nested", {}).get("micro avg")
            results[head][seed] = {"f1": report["scores"]["default"]["micro avg"]["f1"], "train_s": metrics["seconds"],
                                   "inner_recall": nested["recall"] if nested else None, "evaluate_s": seconds}
            print(f"{head} seed {seed}: {results[head][seed]}", flush=True)
    settings = (f"{Path(args.model).name}, {args.epochs} epochs, batch {args.batch_size}, lr {args.lr:g}, seeds "
                f"{' '.join(map(str, args.seeds))}; overrides: {' '.join(args.overrides) or '-'}")  # fmt: skip
    report = [f"data: {args.data}", settings, "", *table(results)]
    (work / "heads.md").write_text("\n".join(report) + "\n", encoding="utf-8")
    (work / "heads.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print("\n".join(report))


if __name__ == "__main__":
    main()
