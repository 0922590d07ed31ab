"""One reading of a trained model: evaluate's prediction file, lit_ner.predict's CoNLL output and NerPredictor's
entities are the same in every sentence, and the F1 of each is evaluate's; with sentences longer than max_length
(windows), with sentence and with document context, and on ONNX Runtime."""

import random
from pathlib import Path

import pytest
from seqeval.metrics import f1_score

from lit_ner.app import compose_config
from lit_ner.data.schemes import entity_spans
from lit_ner.evaluate import evaluate
from lit_ner.predict import NerPredictor, main
from lit_ner.train import train

NAMES, CITIES = ["john", "mary", "anna", "peter", "alan"], ["paris", "london", "berlin", "york"]
FILLERS = "the a of in and to was by is his her book novel wrote written published first city river said".split()


def corpus(seed: int, documents: int) -> str:
    """CoNLL text: documents of 2-4 sentences with PER and LOC entities; one sentence in four is long enough to be
    read in windows at max_length=32."""
    rng = random.Random(seed)
    lines = []
    for _ in range(documents):
        lines.append("-DOCSTART- O\n\n")
        for _ in range(rng.randint(2, 4)):
            long = rng.random() < 0.25
            words = [(w, "O") for w in rng.choices(FILLERS, k=rng.randint(30, 40) if long else rng.randint(2, 6))]
            words.insert(rng.randrange(len(words)), (rng.choice(NAMES), "B-PER"))
            words.insert(rng.randrange(len(words)), (rng.choice(["smith", "walker"]), "I-PER"))
            words.insert(rng.randrange(len(words)), (rng.choice(CITIES), "B-LOC"))
            lines += [f"{w} {t}\n" for w, t in words] + ["\n"]
    return "".join(lines)


@pytest.fixture(scope="module", params=["sentence", "document"])
def trained(request, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, make_cfg) -> tuple[Path, Path]:
    """(data folder, export) of the tiny model trained with this context and max_length=32 (windows)."""
    root = tmp_path_factory.mktemp(f"one_path_{request.param}")
    (root / "data").mkdir()
    for split, seed, n in (("train", 1, 60), ("dev", 2, 10), ("test", 3, 12)):
        (root / "data" / f"{split}.txt").write_text(corpus(seed, n))
    result = train(make_cfg(
        root / "run", tiny_model, root / "cache", "data=local", f"data.path={root / 'data'}",
        f"data.context={request.param}", "data.context_tokens=8", "data.max_length=32", "data.window_context=4",
        "model.lr=3e-3", "trainer.max_epochs=2", "test=false", size=None,
    ))  # fmt: skip
    return root, Path(result["export"])


def evaluated(root: Path, export: Path, out: Path, *overrides: str) -> tuple[dict, list[list[str]], list[list[str]]]:
    """evaluate's report, and the gold and predicted tags of its prediction file (conll=)."""
    args = [f"model.model_name_or_path={export}", f"output_dir={out}", f"conll={out / 'test.conll'}", "data=local",
            f"data.path={root / 'data'}", f"data.cache_dir={root / 'cache'}", *overrides]  # fmt: skip
    report = evaluate(compose_config("evaluate", args))  # reads as the export was trained
    blocks = (out / "test.conll").read_text().strip("\n").split("\n\n")
    rows = [[line.split(" ") for line in block.splitlines()] for block in blocks]
    return report, [[r[1] for r in row] for row in rows], [[r[2] for r in row] for row in rows]


def predicted_column(export: Path, source: Path, out: Path, *options: str) -> list[list[str]]:
    """The tag column lit_ner.predict adds to a CoNLL file."""
    main([f"model={export}", f"input={source}", f"output={out}", "format=conll", *options])
    blocks = [b for b in out.read_text().split("\n\n") if b.strip() and not b.startswith("-DOCSTART-")]
    return [[line.split(" ")[-1] for line in block.strip("\n").splitlines()] for block in blocks]


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_evaluate_predict_and_the_predictor_read_the_model_alike(trained, tmp_path: Path, backend: str) -> None:
    root, export = trained
    options = []
    if backend == "onnx":
        pytest.importorskip("onnxruntime", reason="the onnx extra: pip install -e '.[dev]'")
        from lit_ner.export_onnx import export_onnx, onnx_path

        if not onnx_path(export).is_file():
            export_onnx(export)
        options = ["backend=onnx"]
    report, gold, by_evaluate = evaluated(root, export, tmp_path / "eval", *options)
    assert report["windowed_sentences"] > 0  # sentences longer than max_length were read in windows
    assert any(entity_spans(tags) for tags in by_evaluate), "the model must find entities, or this proves nothing"
    by_predict = predicted_column(export, root / "data" / "test.txt", tmp_path / "tagged.conll", *options)
    assert by_predict == by_evaluate  # every word's tag, so every sentence's entities
    f1 = report["scores"]["default"]["micro avg"]["f1"]
    assert f1_score(gold, by_predict) == pytest.approx(f1, abs=1e-12)

    from lit_ner.data.formats import read_conll

    words, _, documents = read_conll(root / "data" / "test.txt")
    predictor = NerPredictor.from_pretrained(export, backend=backend, device=None if backend == "onnx" else "cpu")
    found = predictor.words(words, documents=documents)
    assert [[(e["type"], e["word_start"], e["word_end"]) for e in s] for s in found] == [
        entity_spans(tags) for tags in by_evaluate
    ]


def test_document_context_changes_what_is_read(trained, tmp_path: Path) -> None:
    """The pairs above would agree trivially if both sides ignored the context: with a document-context model,
    reading sentences alone gives other tags, and evaluate told to do so matches predict told the same."""
    root, export = trained
    if NerPredictor.from_pretrained(export, device="cpu").reading.context != "document":
        pytest.skip("a sentence-context model has no other reading")
    _, _, in_documents = evaluated(root, export, tmp_path / "a")
    _, _, alone = evaluated(root, export, tmp_path / "b", "data.context=sentence")
    assert alone != in_documents
