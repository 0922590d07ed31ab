"""`python -m benchmarks.distill --teacher <run>/model --data <folder> --layers 3 --seeds 1 2 3`: a smaller student of
the teacher's own layers (model.num_layers), trained two ways with everything else equal (the experiment's
defaults): taught by the teacher (distill.teacher: its tag probabilities and the gold labels) and on the gold labels
alone. Each way is one seed sweep of `python -m lit_ner.train`; the table gives the test F1 of each (mean ± sample
std over seeds) beside the teacher's own, and the seconds of the training command (docs/quality.md, Distillation).
Inference speed: `python -m benchmarks.predict --model <student export>` against the teacher's."""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.measure import work_folder
from lit_ner.sweeps import mean_std

VARIANTS = ("distilled", "gold")  # taught by the teacher; the gold labels alone


def train_variant(args: argparse.Namespace, variant: str, work: Path) -> dict[int, dict]:
    """{seed: metrics.json} of one seed sweep; a variant whose every seed already has its metrics.json (an earlier,
    interrupted benchmark) is not trained again."""
    done = {seed: work / variant / f"seed_{seed}" / "metrics.json" for seed in args.seeds}
    if all(path.exists() for path in done.values()):
        print(f"{variant}: reusing the runs in {work / variant}", flush=True)
        return {seed: json.loads(path.read_text()) for seed, path in done.items()}
    teacher = [f"distill.teacher={args.teacher}"] if variant == "distilled" else []
    command = [
        sys.executable, "-m", "lit_ner.train", "-m", f"seed={','.join(map(str, args.seeds))}",
        f"experiment={args.experiment}", "model=minilm", f"model.model_name_or_path={args.teacher}",
        f"model.num_layers={args.layers}", f"data.path={args.data}", *teacher, "trainer=cpu", "demo_sentences=[]",
        f"data.cache_dir={work / 'cache'}", f"hydra.sweep.dir={work / variant}", "hydra.sweep.subdir=seed_${seed}",
        *args.overrides,
    ]  # fmt: skip
    with open(work / f"{variant}.log", "w", encoding="utf-8") as log:
        if subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"lit_ner.train ({variant}) failed: see {work / f'{variant}.log'}")
    return {seed: json.loads(path.read_text()) for seed, path in done.items()}


def table(teacher: dict, results: dict[str, dict[int, dict]], layers: int) -> list[str]:
    taught = teacher["scores"]["test/f1"]
    rows = ["| model | n | test F1 | below the teacher | train s | per seed |", "|---|---:|---|---:|---:|---|",
            f"| teacher (all layers) | 1 | {taught:.4f} | - | {teacher['seconds']:.0f} | - |"]  # fmt: skip
    for variant, runs in results.items():
        f1 = [r["scores"]["test/f1"] for r in runs.values()]
        per_seed = ", ".join(f"{seed}: {r['scores']['test/f1']:.4f}" for seed, r in runs.items())
        rows.append(f"| {layers}-layer student, {variant} | {len(f1)} | {mean_std(f1)} | "
                    f"{taught - statistics.mean(f1):+.4f} | {statistics.mean(r['seconds'] for r in runs.values()):.0f} "
                    f"| {per_seed} |")  # fmt: skip
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.distill", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--teacher", required=True, help="the teacher's export (<run>/model); its run's metrics.json beside")
    p.add_argument("--data", required=True, help="data.path of the experiment (e.g. a CoNLL-2003 folder)")
    p.add_argument("--experiment", default="conll2003")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--work-dir", default=None, help="default: outputs/distill/<time>")
    p.add_argument("overrides", nargs="*", help="more lit_ner.train overrides, e.g. distill.alpha=0.3")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.teacher = str(Path(args.teacher).resolve())
    work = work_folder(args.work_dir, "distill")
    teacher = json.loads((Path(args.teacher).parent / "metrics.json").read_text())
    results = {variant: train_variant(args, variant, work) for variant in args.variants}
    settings = (f"teacher {args.teacher}; experiment={args.experiment}, data {args.data}, seeds "
                f"{' '.join(map(str, args.seeds))}; overrides: {' '.join(args.overrides) or '-'}")  # fmt: skip
    report = [settings, "", *table(teacher, results, args.layers)]
    (work / "distill.md").write_text("\n".join(report) + "\n", encoding="utf-8")
    print("\n".join(report))


if __name__ == "__main__":
    main()
