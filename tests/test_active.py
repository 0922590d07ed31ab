"""The active-learning simulation end to end on the tiny model: rounds that reveal what the strategy picks within
each budget, the curve and its files, a killed run resumed by the same command to the same curve, a run folder of
other settings refused; and predict's sort= strategies on annotation-tool tasks."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lit_ner import active
from lit_ner.errors import ConfigError

SIZES = "active.sizes=[0.1,0.2,0.3]"


def overrides(run_dir: Path, tiny_model: Path, cache: Path, *more: str) -> list[str]:
    return [f"run_dir={run_dir}", f"model.model_name_or_path={tiny_model}", f"data.cache_dir={cache}",
            "data.synthetic_size=200", "data.batch_size=16", "trainer.max_epochs=1",
            "trainer.enable_model_summary=false", "logger=csv", SIZES, "strategy=uncertainty", *more]  # fmt: skip


@pytest.fixture(scope="module")
def straight(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict]]:
    """An uninterrupted three-round run: (its folder, the data cache, its curve rows)."""
    root = tmp_path_factory.mktemp("active")
    rows = active.run(*overrides(root / "run", tiny_model, root / "cache"))
    return root / "run", root / "cache", rows


def test_each_round_trains_on_what_the_strategy_revealed_within_its_budget(straight) -> None:
    run_dir, _, rows = straight
    state = json.loads((run_dir / "state.json").read_text())
    assert [r["round"] for r in rows] == [0, 1, 2] and len(state["picks"]) == 3
    total = sum(len(json.loads(line)["tokens"]) for line in open(run_dir / "rounds/0/data/train.jsonl")) / 0.1
    for k, row in enumerate(rows):
        revealed = [json.loads(line) for line in (run_dir / f"rounds/{k}/data/train.jsonl").read_text().splitlines()]
        labelled = [i for picks in state["picks"][: k + 1] for i in picks]
        assert len(revealed) == row["sentences"] == len(labelled) == len(set(labelled))
        assert sum(len(s["tokens"]) for s in revealed) == row["words"]
        assert 0 <= row["dev_f1"] <= 1 and (run_dir / f"rounds/{k}/model/config.json").is_file()
    words = [r["words"] for r in rows]
    assert words == sorted(words) and words[-1] <= 0.3 * total * 1.15  # grows by round, within the last budget
    with open(run_dir / "curve.csv") as f:
        curve = list(csv.DictReader(f))
    assert [int(r["words"]) for r in curve] == words and set(curve[0]) == set(active.COLUMNS)
    assert "| uncertainty | 42 | 2 |" in (run_dir / "report.md").read_text()
    assert (run_dir / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_uncertainty_round_picks_the_sentences_its_model_is_least_sure_of(straight) -> None:
    run_dir, _, _ = straight
    state = json.loads((run_dir / "state.json").read_text())
    pool = [json.loads(line)["tokens"] for line in (run_dir / "rounds/2/data/train.jsonl").read_text().splitlines()]
    picked = pool[len(state["picks"][0]) + len(state["picks"][1]):]  # round 2's picks, made with round 1's model
    scores = active_scores(run_dir / "rounds/1/model", picked)
    assert scores == sorted(scores)  # served least sure first, as the Label Studio export scores them


def active_scores(model: Path, sentences: list[list[str]]) -> list[float]:
    from lit_ner.predictor import NerPredictor
    from lit_ner.selection import sentence_score

    return [sentence_score(d) for d in NerPredictor.from_pretrained(model, device="cpu").word_tags(sentences)]


def test_a_killed_run_resumes_at_the_next_round_with_the_same_curve(straight, tiny_model: Path, tmp_path: Path) -> None:
    _, cache, rows = straight
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "lit_ner.active", *overrides(run_dir, tiny_model, cache), "hydra.run.dir=."]
    # the lit_ner this test imports, wherever the subprocess starts
    path = os.pathsep.join([str(Path(active.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": path}
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = run_dir / "state.json"
    deadline = time.monotonic() + 240
    while not (state.exists() and len(json.loads(state.read_text())["rounds"]) == 1):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-2000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # in round 1: its training or scoring
    process.wait()
    finished = json.loads(state.read_text())["rounds"]
    assert len(finished) == 1
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 of 3 rounds done, resuming" in done.stdout + done.stderr
    resumed = json.loads(state.read_text())["rounds"]
    assert resumed[0] == finished[0]  # kept as it was (its seconds too), not trained again
    same = [{k: v for k, v in r.items() if k != "seconds"} for r in resumed]
    assert same == [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_a_run_folder_of_other_settings_is_refused(straight, tiny_model: Path, tmp_path: Path) -> None:
    run_dir, cache, _ = straight
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "state.json").write_text((run_dir / "state.json").read_text())
    with pytest.raises(ConfigError, match=r"^strategy: run_dir=.* made with strategy=uncertainty, not random"):
        active.run(*overrides(copy, tiny_model, cache, "strategy=random"))
    with pytest.raises(ConfigError, match=r"^active.sizes: .*\[0.1, 0.2, 0.3\], not \[0.1, 0.2\]"):
        active.run(*overrides(copy, tiny_model, cache, "active.sizes=[0.1,0.2]"))
    assert sorted(p.name for p in copy.iterdir()) == ["state.json"]  # refused before any work


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("strategy=confident", "strategy=confident: no such strategy; choose one of random|uncertainty|mnlp|diverse"),
        ("active.sizes=[0.2,0.1]", "active.sizes=[0.2, 0.1]: give increasing fractions"),
        ("active.sizes=[0.5,1.5]", "active.sizes=[0.5, 1.5]: give increasing fractions"),
        ("active.unit=pages", "active.unit=pages: count the budget in words or sentences"),
        ("active.sizes=[0.0001,0.5]", "active.sizes[0]=0.0001: reveals no sentence"),
    ],
)
def test_bad_settings_stop_with_one_line_naming_the_key(setting: str, said: str, straight, tiny_model: Path,
                                                         tmp_path: Path) -> None:  # fmt: skip
    _, cache, _ = straight
    with pytest.raises(ConfigError) as refused:
        active.run(*overrides(tmp_path / "run", tiny_model, cache, setting))
    assert str(refused.value).startswith(said) and "\n" not in str(refused.value)


# ---- predict sort= on annotation-tool tasks


def write_tasks(path: Path, texts: list[str]) -> None:
    path.write_text(json.dumps([{"id": n, "data": {"text": text}} for n, text in enumerate(texts)]))


def served(model: Path, tasks: Path, out: Path, *args: str) -> list[int]:
    from lit_ner.predict import main

    main([f"model={model}", f"input={tasks}", f"output={out}", "device=cpu", *args])
    if "format=doccano" in args:
        copies: dict[str, list[int]] = {}  # doccano lines carry no id: a text's copies in their order
        for n, task in enumerate(json.loads(tasks.read_text())):
            copies.setdefault(task["data"]["text"], []).append(n)
        return [copies[json.loads(line)["text"]].pop(0) for line in out.read_text().splitlines()]
    return [task["id"] for task in json.loads(out.read_text())]


def test_predict_sort_random_serves_every_task_once_in_a_seeded_order(straight, tmp_path: Path) -> None:
    model = straight[0] / "rounds/2/model"
    write_tasks(tmp_path / "tasks.json", [f"John Smith wrote book {n} in Paris" for n in range(12)])
    order = served(model, tmp_path / "tasks.json", tmp_path / "a.json", "format=label-studio", "sort=random")
    assert sorted(order) == list(range(12)) and order != list(range(12))
    assert served(model, tmp_path / "tasks.json", tmp_path / "b.json", "format=label-studio", "sort=random") == order


def test_predict_sort_diverse_serves_one_of_each_group_of_near_duplicates_first(straight, tmp_path: Path) -> None:
    model = straight[0] / "rounds/2/model"
    groups = ["Mary Smith painted it in Berlin", "the city river meeting today", "John Walker wrote a new novel"]
    write_tasks(tmp_path / "tasks.json", [text for text in groups for _ in range(4)])  # 4 copies of each
    group = [n // 4 for n in range(12)]
    by_uncertainty = served(model, tmp_path / "tasks.json", tmp_path / "u.json", "format=label-studio",
                            "sort=uncertainty")  # fmt: skip
    assert len({group[i] for i in by_uncertainty[:3]}) == 1  # the least sure text's copies first
    for form in ("format=label-studio", "format=doccano"):
        order = served(model, tmp_path / "tasks.json", tmp_path / "d.out", form, "sort=diverse")
        assert sorted(order) == list(range(12)) and {group[i] for i in order[:3]} == {0, 1, 2}, form


def test_predict_sort_mnlp_serves_the_least_sure_per_word_first(straight, tmp_path: Path) -> None:
    from lit_ner.predictor import NerPredictor
    from lit_ner.selection import sentence_score

    model = straight[0] / "rounds/2/model"
    texts = ["John Smith wrote it", "the river in Paris is long and the city is old and grey today",
             "Mary Walker", "a book of 1940 by Alan Walker in Berlin", "it rained"]  # fmt: skip
    write_tasks(tmp_path / "tasks.json", texts)
    decoded = [d for _, d in NerPredictor.from_pretrained(model, device="cpu").texts(texts)]
    expected = sorted(range(len(texts)), key=lambda n: sentence_score(decoded[n], "mnlp"))
    assert served(model, tmp_path / "tasks.json", tmp_path / "m.json", "format=label-studio", "sort=mnlp") == expected


def trained_from(round_dir: Path) -> str:
    """The model a round's training started from, as its best checkpoint records it."""
    import torch

    checkpoint = torch.load(round_dir / "checkpoints/best.ckpt", map_location="cpu", weights_only=True)
    return checkpoint["hyper_parameters"]["model_name_or_path"]


def test_warm_start_trains_each_round_from_the_previous_rounds_export(straight, tiny_model: Path,
                                                                      tmp_path: Path) -> None:  # fmt: skip
    run_dir, cache, _ = straight  # the default: warm start
    assert trained_from(run_dir / "rounds/0") == str(tiny_model)
    assert trained_from(run_dir / "rounds/1") == str(run_dir / "rounds/0/model")
    active.run(*overrides(tmp_path / "run", tiny_model, cache, "active.sizes=[0.1,0.2]", "active.warm_start=false"))
    assert trained_from(tmp_path / "run/rounds/1") == str(tiny_model)  # cold: every round from the encoder
