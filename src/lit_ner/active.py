"""`python -m lit_ner.active data=NAME strategy=random|uncertainty|mnlp|diverse` (or `lit-ner-active`): how much
labelling a corpus needs, simulated on labelled data. The training split's labels are hidden; each round reveals
sentences picked by the strategy (lit_ner.selection), trains on them with lit_ner's own training, and records the dev
F1."""

import csv
import hashlib
import io
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf, open_dict

from lit_ner import files
from lit_ner.app import CONFIG_PATH, build, check_writable
from lit_ner.cli import check_config, compose_run, hydra_refusals_reported, model_argument
from lit_ner.errors import REPORTED, ConfigError, exit_with
from lit_ner.locations import local_or_hub
from lit_ner.reports import markdown_table
from lit_ner.selection import STRATEGIES, count_for, embed, pick, sentence_score
from lit_ner.training import train  # the recipe lit-ner-train runs, a round at a time

log = logging.getLogger("lit_ner")
UNITS = ("words", "sentences")
COLUMNS = ("strategy", "seed", "round", "sentences", "words", "dev_f1", "seconds")


class Pool:
    """The training split as the data side reads it (the labels hidden from the strategies), and the dev split."""

    def __init__(self, cfg: DictConfig) -> None:
        datamodule = build(cfg.data, _convert_="all")
        datamodule.prepare_data()  # the one reader of the source: training's, and its cache
        words = datamodule.cached_words()
        self.labels = datamodule.labels
        self.train, self.dev = words["train"].to_list(), words["validation"].to_list()
        self.words = [len(s["tokens"]) for s in self.train]
        digest = hashlib.sha256(json.dumps([self.train, self.dev], sort_keys=True).encode())
        self.fingerprint = digest.hexdigest()[:16]  # what a resume must find again

    def costs(self, unit: str) -> list[float]:
        """What labelling each training sentence costs: its words, or 1."""
        return [float(n) if unit == "words" else 1.0 for n in self.words]


def check_settings(cfg: DictConfig) -> None:
    """The active block's values, each refused in one line naming its key."""
    if cfg.strategy not in STRATEGIES:
        raise ConfigError(f"strategy={cfg.strategy}: no such strategy; choose one of {'|'.join(STRATEGIES)}")
    active = cfg.active
    if active.unit not in UNITS:
        raise ConfigError(f"active.unit={active.unit}: count the budget in words or sentences")
    sizes = list(active.sizes)
    if not sizes or any(not 0 < s <= 1 for s in sizes) or any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise ConfigError(
            f"active.sizes={sizes}: give increasing fractions of the training split in (0, 1], e.g. [0.02,0.04,0.08]"
        )
    if cfg.optimized_metric != "val/f1":
        raise ConfigError(f"optimized_metric={cfg.optimized_metric}: the curve records dev F1; leave it val/f1")


def settings_of(cfg: DictConfig, pool: Pool) -> dict[str, Any]:
    """What a run folder's rounds depend on: a resume with any other value would mix two experiments."""
    active = OmegaConf.to_container(cfg.active, resolve=True)
    return {"strategy": cfg.strategy, **active, "data": pool.fingerprint, "model": str(cfg.model.model_name_or_path)}


def read_state(run_dir: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The finished rounds of an earlier run in this folder (none for a new one); other settings stop here."""
    path = run_dir / "state.json"
    if not path.exists():
        return {"settings": settings, "picks": [], "rounds": []}
    state = json.loads(path.read_text(encoding="utf-8"))
    for key, value in settings.items():
        if state["settings"].get(key) != value:
            name = key if key in ("strategy", "data", "model") else f"active.{key}"
            raise ConfigError(
                f"{name}: run_dir={run_dir} holds rounds made with {name}={state['settings'].get(key)}, not {value}; "
                "rerun with that value to resume, or give another run_dir"
            )
    return state


def round_config(cfg: DictConfig, k: int, pool: Pool, labelled: list[int]) -> DictConfig:
    """The training config of round k: the revealed sentences as the train split (JSON lines beside the dev split,
    read by the same data side), the pool's labels, no test; warm_start: from the previous round's export."""
    folder = Path(cfg.run_dir) / "rounds" / str(k)
    shutil.rmtree(folder, ignore_errors=True)  # a round killed midway is redone from its start
    (folder / "data").mkdir(parents=True)
    for name, sentences in (("train", [pool.train[i] for i in labelled]), ("validation", pool.dev)):
        lines = (json.dumps({"tokens": s["tokens"], "tags": s["tags"], "document": s["document"]}) for s in sentences)
        files.write_text(folder / "data" / f"{name}.jsonl", "".join(line + "\n" for line in lines))
    round_cfg = cfg.copy()
    with open_dict(round_cfg):
        data = round_cfg.data
        data.path, data.format = str(folder / "data"), "json"
        data.data_files, data.hub_name, data.synthetic = None, None, None  # data.path is the only source
        data.labels, data.scheme, data.label_names = list(pool.labels), data.train_scheme, None  # tags as read
        round_cfg.run_dir, round_cfg.test, round_cfg.export, round_cfg.ckpt_path = str(folder), False, True, None
        round_cfg.demo_sentences, round_cfg.hub.repo_id = [], None
        if cfg.active.warm_start and k > 0:
            round_cfg.model.model_name_or_path = str(folder.parent / str(k - 1) / "model")
    return round_cfg


def scores_of(export: str, pool: Pool, unlabelled: list[int], strategy: str) -> list[float]:
    """How sure the round's model is of each unlabelled sentence by the strategy's score, read as predict reads it."""
    from lit_ner.predictor import NerPredictor

    predictor = NerPredictor.from_pretrained(export)
    sentences = [pool.train[i]["tokens"] for i in unlabelled]
    documents = [pool.train[i]["document"] for i in unlabelled]
    return [sentence_score(decoded, strategy) for decoded in predictor.word_tags(sentences, documents=documents)]


def pool_embeddings(cfg: DictConfig, pool: Pool) -> np.ndarray:
    """The training sentences' embeddings by the data's encoder, computed once and kept in the run folder."""
    path = Path(cfg.run_dir) / "embeddings.npy"
    if not path.exists():
        from transformers import AutoModel

        from lit_ner.data.encode import load_tokenizer
        from lit_ner.models import load_weights

        name = local_or_hub(cfg.model.model_name_or_path, "model.model_name_or_path")
        encoder = load_weights(name, AutoModel, "model.model_name_or_path")
        vectors = embed(encoder, load_tokenizer(name), [s["tokens"] for s in pool.train], max_length=cfg.data.max_length)
        with files.writing(path, "wb") as f:
            np.save(f, vectors)
    return np.load(path)


def next_picks(cfg: DictConfig, k: int, pool: Pool, labelled: list[int], export: str, budget: float,
               embeddings: np.ndarray | None) -> list[int]:  # fmt: skip
    """The sentences revealed in round k+1: by the strategy, among the unlabelled ones, up to `budget` in all."""
    costs = pool.costs(cfg.active.unit)
    taken = set(labelled)
    unlabelled = [i for i in range(len(pool.train)) if i not in taken]
    left = budget - sum(costs[i] for i in labelled)
    scores = None if cfg.strategy == "random" else scores_of(export, pool, unlabelled, cfg.strategy)
    vectors = None if embeddings is None else embeddings[unlabelled]
    local = pick(cfg.strategy, left, [costs[i] for i in unlabelled], scores, vectors, seed=cfg.active.seed + k + 1)
    return [unlabelled[j] for j in local]


def run_round(cfg: DictConfig, k: int, pool: Pool, state: dict[str, Any], budgets: list[float],
              embeddings: np.ndarray | None) -> None:  # fmt: skip
    """Train on what rounds 0..k revealed, record the best dev F1, pick round k+1's sentences; state.json then holds
    the round, so that a kill from here on loses nothing of it. `seconds`: the training and the picking."""

    started = time.perf_counter()
    labelled = [i for picks in state["picks"][: k + 1] for i in picks]
    result = train(round_config(cfg, k, pool, labelled))
    row = {"strategy": cfg.strategy, "seed": cfg.active.seed, "round": k, "sentences": len(labelled),
           "words": sum(pool.words[i] for i in labelled), "dev_f1": result["best"]["value"]}  # fmt: skip
    if k + 1 < len(budgets):
        state["picks"].append(next_picks(cfg, k, pool, labelled, result["export"], budgets[k + 1], embeddings))
        if not state["picks"][-1]:
            log.warning("round %d reveals no sentence: its budget grows less than the next pick costs; space "
                        "active.sizes further apart", k + 2)  # fmt: skip
    row["seconds"] = round(time.perf_counter() - started, 1)
    state["rounds"].append(row)
    files.write_text(Path(cfg.run_dir) / "state.json", json.dumps(state, indent=1))
    log.info("round %d/%d: %d labelled sentences, %d words, dev F1 %.4f, %.0f s", k + 1, len(budgets),
             row["sentences"], row["words"], row["dev_f1"] or 0.0, row["seconds"])  # fmt: skip


def write_curve(run_dir: Path, rows: list[dict[str, Any]], unit: str) -> None:
    """curve.csv, report.md (the same rows as a table) and curve.png (labelled words or sentences -> dev F1)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(run_dir / "curve.csv", text.getvalue())
    table = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    table += ["| " + " | ".join(f"{r[c]:.4f}" if c == "dev_f1" and r[c] is not None else str(r[c])
                                for c in COLUMNS) + " |" for r in rows]  # fmt: skip
    title = f"# Active learning: {rows[0]['strategy']}, seed {rows[0]['seed']}" if rows else "# Active learning"
    files.write_text(run_dir / "report.md", f"{title}\n\ndev F1 after each round (budget in {unit}):\n\n"
                     + "\n".join(table) + "\n")  # fmt: skip
    # a bare Figure renders with Agg and leaves pyplot (and a notebook's backend) alone
    figure = Figure(figsize=(6, 4.5), layout="constrained")
    axes = figure.add_subplot()
    axes.plot([r[unit] for r in rows], [r["dev_f1"] or 0.0 for r in rows], marker="o",
              label=rows[0]["strategy"] if rows else None)  # fmt: skip
    axes.set(xlabel=f"labelled {unit}", ylabel="dev F1 (entity level)", ylim=(0, 1), title="learning curve")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    with files.writing(run_dir / "curve.png", "wb") as f:
        figure.savefig(f, format="png", dpi=120)


def simulate(cfg: DictConfig) -> list[dict[str, Any]]:
    """The whole simulation, callable in-process; rounds that state.json holds are not run again. Returns the
    curve's rows."""
    check_settings(cfg)
    run_dir = Path(cfg.run_dir)
    check_writable(run_dir, "run_dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    pool = Pool(cfg)
    state = read_state(run_dir, settings_of(cfg, pool))
    costs, sizes = pool.costs(cfg.active.unit), list(cfg.active.sizes)
    budgets = [count_for(size, sum(costs)) for size in sizes]
    if not state["picks"]:  # round 0: a seeded random first set, whatever the strategy
        state["picks"].append(pick("random", budgets[0], costs, seed=cfg.active.seed))
    if not state["picks"][0]:
        raise ConfigError(
            f"active.sizes[0]={sizes[0]}: reveals no sentence of the {len(pool.train)}-sentence training split "
            f"({sum(costs):.0f} {cfg.active.unit}); raise it"
        )
    embeddings = pool_embeddings(cfg, pool) if cfg.strategy == "diverse" else None
    if state["rounds"]:
        log.info("run_dir=%s: %d of %d rounds done, resuming", run_dir, len(state["rounds"]), len(sizes))
    for k in range(len(state["rounds"]), len(sizes)):
        run_round(cfg, k, pool, state, budgets, embeddings)
        write_curve(run_dir, state["rounds"], cfg.active.unit)
    write_curve(run_dir, state["rounds"], cfg.active.unit)
    print(f"\nlit_ner active learning: {run_dir / 'report.md'}\n" + (run_dir / "report.md").read_text(encoding="utf-8"))
    return state["rounds"]


def run(*overrides: str) -> list[dict[str, Any]]:
    """`lit_ner.active.run("data=conll2003", "strategy=diverse")`: what the command does, in this process."""
    return simulate(compose_run("active", [model_argument(o, any_name=False) for o in overrides], "run_dir"))


@hydra.main(config_path=CONFIG_PATH, config_name="active", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    try:
        check_config(cfg)
        simulate(cfg)
    except REPORTED as err:
        exit_with(err)


def main() -> None:
    """`python -m lit_ner.active` and `lit-ner-active`."""
    sys.argv = [sys.argv[0], *(model_argument(arg, any_name=False) for arg in sys.argv[1:])]
    with hydra_refusals_reported("active"):
        hydra_main()


if __name__ == "__main__":
    main()
