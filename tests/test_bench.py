"""The speed benchmark end to end on the tiny model and a few book sentences: every row, with a ratio column.
No timing is asserted: timings live in the table the benchmark prints."""

import json
from pathlib import Path

import pytest

pytest.importorskip("accelerate", reason="the recipe side uses transformers' Trainer, which needs accelerate")

from benchmarks.train import ROWS, main  # noqa: E402


def interval(cell: str) -> tuple[float, float]:
    """The values a rounded table cell ("1,234", "35.2%", "0.8123") stands for."""
    text = cell.replace(",", "")
    scale = 0.01 if text.endswith("%") else 1.0
    text = text.rstrip("%")
    half = 0.5 * 10 ** -len(text.partition(".")[2])
    return (float(text) - half) * scale, (float(text) + half) * scale


def test_bench_prints_every_row_with_a_ratio(tiny_model: Path, tmp_path: Path) -> None:
    output = tmp_path / "bench.md"
    text = main(
        [
            "--model", str(tiny_model), "--data", "books", "--train-sentences", "64", "--eval-sentences", "32",
            "--batch-size", "16", "--metric-sentences", "300", "--matmul-size", "256", "--output", str(output),
        ]
    )  # fmt: skip
    assert output.read_text() == text
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| measure |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns == ["measure", "lit_ner", "recipe", "lit_ner / recipe", "target"]
    for label, key, _, _ in ROWS:
        row = [line for line in lines if line.startswith(f"| {label} |")]
        if key == "cuda_mib":  # a GPU row, absent on CPU
            assert not row
            continue
        assert row, f"no row {label!r} in\n{text}"
        cells = [c.strip() for c in row[0].strip("|").split("|")]
        assert len(cells) == 5, row[0]
        (ours_low, ours_high), (recipe_low, recipe_high) = interval(cells[1]), interval(cells[2])
        if recipe_high <= 0:  # e.g. F1 0 for the untrained tiny model: no ratio to give
            assert cells[3] == "n/a", row[0]
            continue
        # the ratio of the two columns, within what their rounding allows (and the ratio's own 3 digits)
        ratio = float(cells[3])
        assert ratio >= max(ours_low, 0) / recipe_high * 0.995, row[0]
        if recipe_low > 0:
            assert ratio <= ours_high / recipe_low * 1.005, row[0]
    assert "built-in book corpus" in text
    assert "| seqeval (the recipe's compute_metrics after the argmax) |" in text
    assert "EntityMetric, 1 torch thread(s)" in text


def test_the_active_learning_table_finds_the_first_round_that_reaches_95_percent_of_full_data() -> None:
    from benchmarks.active import table

    def curve(*points: tuple[float, float]) -> list[dict]:
        return [{"words": w, "dev_f1": f} for w, f in points]

    curves = {
        "random": {1: curve((100, 0.5), (200, 0.7), (400, 0.80)), 2: curve((100, 0.5), (200, 0.7), (400, 0.82))},
        "uncertainty": {1: curve((100, 0.5), (200, 0.80), (400, 0.85)), 2: curve((100, 0.5), (200, 0.81), (400, 0.85))},
    }
    rows = table(curves, reference=[0.84, 0.84], total_words=1000)
    assert "95 %: 0.7980" in rows[0]
    random_row, uncertainty_row = rows[-2], rows[-1]
    assert random_row.endswith("| 400 (40.0%) |")  # the mean of 0.80 and 0.82 passes 0.798 at round 2
    assert uncertainty_row.endswith("| 200 (20.0%) |") and "20.0%: 0.8050 ± 0.0071" in uncertainty_row
    assert table({"random": {1: curve((100, 0.1))}}, [0.84], 1000)[-1].endswith("| not within the rounds |")


def test_the_distillation_table_sets_each_student_beside_its_teacher() -> None:
    from benchmarks.distill import table

    teacher = {"scores": {"test/f1": 0.90}, "seconds": 100.0}
    runs = {"distilled": {1: {"scores": {"test/f1": 0.88}, "seconds": 50.0}, 2: {"scores": {"test/f1": 0.86}, "seconds": 60.0}}}
    rows = table(teacher, runs, layers=3)
    assert rows[2].startswith("| teacher (all layers) | 1 | 0.9000 |")
    assert rows[3].startswith("| 3-layer student, distilled | 2 | 0.8700 ± 0.0141 | +0.0300 | 55 |")


def test_nested_misses_counts_how_often_training_labels_words_inside_a_longer_entity() -> None:
    from benchmarks.nested_misses import inner_labelled

    words = [["human", "T", "cells", "grow"], ["human", "T", "cells"], ["T", "cells"]]
    gold = [[("cell_type", 0, 3), ("cell_type", 1, 3)], [("cell_type", 0, 3)], [("cell_type", 0, 2)]]
    seen, labelled = inner_labelled(words, gold)
    assert (seen["T cells"], labelled["T cells"]) == (2, 1)  # inside "human T cells" twice, labelled once
    assert (seen["human"], labelled["human"]) == (2, 0)
    assert seen["T"] == 4 and seen["cells grow"] == 0  # inside each longer entity (4); "grow" is in none


def test_the_spanmarker_peer_scores_the_same_first_sentences_it_was_given(tmp_path: Path, capsys) -> None:
    """`subset` writes what both tools train on; `score` counts every gold entity of those sentences, so a missed one
    lowers recall (an entity SpanMarker cannot represent is not left out of the score)."""
    from benchmarks.spanmarker import main as peer

    corpus = tmp_path / "conll"
    corpus.mkdir()
    sentence = "-DOCSTART- O\n\nJohn B-PER\nSmith I-PER\nvisited O\nParis B-LOC\n\nRome B-LOC\nwins O\n\n"
    for file in ("train.txt", "valid.txt", "test.txt"):
        (corpus / file).write_text(sentence * 3, encoding="utf-8")
    small = tmp_path / "small"
    peer(["subset", "--data", str(corpus), "--out", str(small), "--train-sentences", "4", "--eval-sentences", "2"])
    assert (small / "train.txt").read_text().count("\n\n") == 4
    assert (small / "test.txt").read_text().startswith("John B-PER\nSmith I-PER\nvisited O\nParis B-LOC\n\nRome")
    predictions = [{"split": "test", "index": 0, "entities": [["PER", 0, 2], ["LOC", 3, 4]]},
                   {"split": "test", "index": 1, "entities": []}]  # fmt: skip
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions))
    capsys.readouterr()
    peer(["score", str(tmp_path / "predictions.jsonl"), "--data", str(small)])
    out = capsys.readouterr().out
    assert "test: 2 sentences, 3 gold entities, 2 predicted" in out
    micro = next(line.split() for line in out.splitlines() if "micro avg" in line)
    assert micro[2:] == ["1.0000", "0.6667", "0.8000", "3"]  # precision, recall, f1, support
    assert "(agrees with lit_ner's metric)" in out
