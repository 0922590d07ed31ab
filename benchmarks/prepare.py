"""`python -m benchmarks.prepare`: data preparation of a corpus larger than memory. CoNLL-2003 train is repeated into
CoNLL files of each size asked for (with CoNLL-2003's own dev and test), and the whole command a user runs,
`python -m lit_ner.train experiment=conll2003 model=minilm data.path=<folder> debug=fast test=false`, is timed with
a cold cache, one run after the other: wall time, sentences a second, and the peak resident memory of the process
and its children. With `--baseline <git ref>`, the same command at that commit (a worktree of this clone) runs
beside each size: the table then says lit_ner / baseline. With `--key`, only the data cache's key is timed (it hashes
the files' content): the first run with the files' pages evicted and in memory, and a later run that finds the
hashes remembered."""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from benchmarks.measure import SHARED_CONLL


def write_corpus(folder: Path, source: Path, sentences: int) -> None:
    """`folder`/train.txt: the sentences of `source`/train.txt repeated until there are `sentences`; valid.txt and
    test.txt copied."""
    from lit_ner.data.formats import conll_lines

    folder.mkdir(parents=True, exist_ok=True)
    lines, _, numbers, _ = conll_lines(source / "train.txt")
    blocks = ["\n".join(lines[n] for n in sentence) + "\n\n" for sentence in numbers]
    with open(folder / "train.txt", "w", encoding="utf-8") as out:
        for i in range(sentences):
            out.write(blocks[i % len(blocks)])
    for name in ("valid.txt", "test.txt"):
        (folder / name).write_bytes((source / name).read_bytes())


def timed(command: list[str], log: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS of the largest process in MiB) of `command` run to its end in a child process."""
    code = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "rc = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], 'w'), stderr=subprocess.STDOUT).returncode; "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)"
    )  # a fresh process a run, so that ru_maxrss is this run's
    out = subprocess.run([sys.executable, "-c", code, str(log), *command], capture_output=True, text=True, env=env)
    seconds, kib, rc = out.stdout.split()
    if int(rc):
        raise SystemExit(f"{' '.join(command)} failed ({rc}); see {log}")
    return float(seconds), int(kib) / 1024


def evict(files: list[Path]) -> None:
    """Drop the files' pages from the page cache (written to disk first: only clean pages can go), as after a reboot."""
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def time_key(folder: Path, work: Path, repeats: int = 3) -> list[tuple[str, float]]:
    """The best of `repeats` seconds to work out the cache key of the corpus in `folder` (NerDataModule.cache_path):
    a first run (no hash remembered) with the files on disk only, then in memory; a later run (hashes remembered)."""
    from lit_ner.data import NerDataModule, cache

    files = sorted(folder.iterdir())
    time.sleep(cache.SETTLED_NS / 1e9)  # a file changed less than this ago is hashed each run (lit_ner.data.cache)

    def key(cache_dir: Path) -> float:
        start = time.perf_counter()
        NerDataModule("tokenizer", path=str(folder), cache_dir=str(cache_dir)).cache_path
        return time.perf_counter() - start

    rows = []
    for where in ("on disk", "in memory"):
        seconds = []
        for n in range(repeats):
            if where == "on disk":
                evict(files)
            seconds.append(key(work / f"cache_{where}_{n}"))  # a cache folder of its own: nothing remembered
        rows.append((f"first run, files {where}", min(seconds)))
    remembered = cache.FileHashes(work / "cache_remembered")
    for file in files:
        remembered.digest(file)
    remembered.remember()
    rows.append(("later run, hashes remembered", min(key(work / "cache_remembered") for _ in range(repeats))))
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.prepare", description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[280_820, 500_000, 1_000_000], help="train sentences")
    p.add_argument("--data", default=str(SHARED_CONLL), help="a CoNLL-2003 folder (train.txt, valid.txt, test.txt)")
    p.add_argument("--baseline", default=None, help="a git ref to run the same command at, e.g. dfe0204")
    p.add_argument("--work-dir", default=None, help="default: a temporary folder")
    p.add_argument("--key", action="store_true", help="time only the cache key (no training run)")
    args = p.parse_args(argv)
    if args.key:
        return main_key(args, argv)
    with tempfile.TemporaryDirectory(prefix="lit_ner_prepare_") as tmp:
        work = Path(args.work_dir or tmp)
        sides = {"lit_ner": Path.cwd()}
        if args.baseline:
            tree = work / "baseline"
            if not tree.exists():
                subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.baseline], check=True)
            sides[f"baseline {args.baseline}"] = tree
        rows = []
        for size in args.sizes:
            data = work / f"corpus_{size}"
            write_corpus(data, Path(args.data), size)
            for side, tree in sides.items():
                run = work / f"run_{size}_{side.split()[0]}"
                command = [
                    sys.executable, "-m", "lit_ner.train", "experiment=conll2003", "model=minilm", f"data.path={data}",
                    "debug=fast", "test=false", f"data.cache_dir={run / 'cache'}", f"hydra.run.dir={run}",
                ]  # fmt: skip
                env = os.environ | {"PYTHONPATH": os.pathsep.join([str(tree / "src"), str(tree)])}
                seconds, rss = timed(command, work / f"{run.name}.log", env)
                rows.append((size, side, seconds, size / seconds, rss))
                print(f"{size:,} sentences, {side}: {seconds:.1f} s, {size / seconds:,.0f} sentences/s, "
                      f"peak RSS {rss:,.0f} MiB", flush=True)  # fmt: skip
        if args.baseline:
            subprocess.run(["git", "worktree", "remove", "--force", str(work / "baseline")], check=False)
    lines = [
        f"## Data preparation ({datetime.now():%Y-%m-%d %H:%M}; `python -m benchmarks.prepare {' '.join(argv or sys.argv[1:])}`)",
        "",
        "| train sentences | code | seconds | sentences/s | peak RSS, MiB |",
        "|---:|---|---:|---:|---:|",
        *(f"| {size:,} | {side} | {s:.1f} | {rate:,.0f} | {rss:,.0f} |" for size, side, s, rate, rss in rows),
    ]
    if args.baseline:
        lines += ["", "| train sentences | speed-up (baseline seconds / lit_ner seconds) | peak RSS, lit_ner − baseline, MiB |", "|---:|---:|---:|"]
        for size in args.sizes:
            ours, theirs = [r for r in rows if r[0] == size]
            lines.append(f"| {size:,} | {theirs[2] / ours[2]:.2f} | {ours[4] - theirs[4]:+,.0f} |")
    print("\n".join(lines))


def main_key(args: argparse.Namespace, argv: list[str] | None) -> None:
    command = f"python -m benchmarks.prepare {' '.join(argv or sys.argv[1:])}"
    lines = [
        f"## The data cache's key ({datetime.now():%Y-%m-%d %H:%M}; `{command}`)",
        "",
        "| train sentences | data files, MB | run | milliseconds | MB hashed a second |",
        "|---:|---:|---|---:|---:|",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="lit_ner_key_") as tmp:
        work = Path(args.work_dir or tmp)
        for size in args.sizes:
            data = work / f"corpus_{size}"
            write_corpus(data, Path(args.data), size)
            megabytes = sum(file.stat().st_size for file in data.iterdir()) / 1e6
            for run, seconds in time_key(data, work / f"key_{size}"):
                rate = f"{megabytes / seconds:,.0f}" if run.startswith("first") else "none hashed"
                lines.append(f"| {size:,} | {megabytes:.0f} | {run} | {seconds * 1000:,.1f} | {rate} |")
                print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
