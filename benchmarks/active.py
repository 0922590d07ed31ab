"""`python -m benchmarks.active --data <folder> --strategies random uncertainty diverse --seeds 1 2 3`: the active-
learning simulation (`python -m lit_ner.active`) of each strategy and seed on one corpus, beside the full-data run of
the same settings (`python -m lit_ner.train`, each seed). The table gives each round's labelled words (the share of
the training split's) and dev F1 (mean ± sample std over seeds) per strategy, and the words each strategy needs to
reach 95 % of the full-data dev F1 (the first round whose mean does). docs/quality.md, Active learning."""

import argparse
import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.measure import work_folder
from lit_ner.sweeps import mean_std


def run(command: list[str], log: Path) -> None:
    with open(log, "w", encoding="utf-8") as out:
        if subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"{' '.join(command[:3])} failed: see {log}")


def common(args: argparse.Namespace, work: Path) -> list[str]:
    return ["experiment=local", f"data.path={args.data}", f"trainer.max_epochs={args.epochs}", "trainer=cpu",
            "logger=csv", "demo_sentences=[]", f"data.cache_dir={work / 'cache'}", *args.overrides]  # fmt: skip


def full_data(args: argparse.Namespace, work: Path, seed: int) -> float:
    """The best dev F1 of the same settings on the whole training split (reused when its metrics.json exists)."""
    folder = work / "full" / f"seed_{seed}"
    if not (folder / "metrics.json").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        run([sys.executable, "-m", "lit_ner.train", *common(args, work), f"seed={seed}", "test=false",
             f"run_dir={folder}"], folder.parent / f"seed_{seed}.log")  # fmt: skip
    return json.loads((folder / "metrics.json").read_text())["best"]["value"]


def simulate(args: argparse.Namespace, work: Path, strategy: str, seed: int) -> list[dict]:
    """The curve of one strategy and seed (lit_ner.active resumes a run folder's finished rounds)."""
    folder = work / strategy / f"seed_{seed}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    sizes = "[" + ",".join(map(str, args.sizes)) + "]"
    run([sys.executable, "-m", "lit_ner.active", *common(args, work), f"strategy={strategy}", f"seed={seed}",
         f"active.sizes={sizes}", f"active.unit={args.unit}", f"active.warm_start={str(args.start == 'warm').lower()}",
         f"run_dir={folder}"], folder.parent / f"seed_{seed}.log")  # fmt: skip
    with open(folder / "curve.csv", encoding="utf-8") as f:
        return [{k: float(v) if k in ("words", "sentences", "dev_f1", "seconds") else v for k, v in row.items()}
                for row in csv.DictReader(f)]  # fmt: skip


def table(curves: dict[str, dict[int, list[dict]]], reference: list[float], total_words: float) -> list[str]:
    target = 0.95 * statistics.mean(reference)
    rounds = len(next(iter(next(iter(curves.values())).values())))
    head = "| strategy | " + " | ".join(f"round {k}" for k in range(rounds)) + " | words to 95 % of full data |"
    rows = [f"full-data dev F1 {mean_std(reference)} (n={len(reference)}); 95 %: {target:.4f}", "", head,
            "|---|" + "---|" * (rounds + 1)]  # fmt: skip
    for strategy, by_seed in curves.items():
        cells, reached = [], None
        for k in range(rounds):
            f1 = [curve[k]["dev_f1"] for curve in by_seed.values()]
            words = statistics.mean(curve[k]["words"] for curve in by_seed.values())
            cells.append(f"{words / total_words:.1%}: {mean_std(f1)}")
            if reached is None and statistics.mean(f1) >= target:
                reached = f"{words:.0f} ({words / total_words:.1%})"
        rows.append(f"| {strategy} | " + " | ".join(cells) + f" | {reached or 'not within the rounds'} |")
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.active", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--data", required=True, help="a folder lit_ner reads (data=local) with train, dev and test files")
    p.add_argument("--strategies", nargs="+", default=["random", "uncertainty", "mnlp", "diverse"])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--sizes", type=float, nargs="+", default=[0.02, 0.04, 0.08, 0.12, 0.16, 0.2, 0.25, 0.3])
    p.add_argument("--unit", default="words", choices=["words", "sentences"])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--start", choices=("warm", "cold"), default="warm",
                   help="warm (lit_ner's default): each round from the previous round's export; cold: from the encoder")
    p.add_argument("--work-dir", default=None, help="default: outputs/active/<time>")
    p.add_argument("overrides", nargs="*", help="more overrides for every run, e.g. model.lr=5e-5")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work = work_folder(args.work_dir, "active")
    reference = [full_data(args, work, seed) for seed in args.seeds]
    curves = {s: {seed: simulate(args, work, s, seed) for seed in args.seeds} for s in args.strategies}
    from lit_ner.active import Pool
    from lit_ner.app import compose_config

    total = sum(Pool(compose_config("active", common(args, work))).words)  # the training split's words
    settings = (f"data {args.data}; {args.epochs} epochs a round; sizes {args.sizes} of the {args.unit}; "
                f"{args.start} start; seeds "
                f"{' '.join(map(str, args.seeds))}; overrides: {' '.join(args.overrides) or '-'}")  # fmt: skip
    report = [settings, "", *table(curves, reference, total)]
    (work / "active.md").write_text("\n".join(report) + "\n", encoding="utf-8")
    print("\n".join(report))


if __name__ == "__main__":
    main()
