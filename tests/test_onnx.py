"""ONNX export and the ONNX Runtime backend (`python -m lit_ner.export_onnx`, `backend=onnx [quantize=int8]` in
predict and evaluate): the fp32 graph gives the torch model's entities, int8 stays close in test F1, and a missing
ONNX file says how to write it."""

from pathlib import Path

import pytest

from lit_ner.app import compose_config
from lit_ner.errors import ConfigError
from lit_ner.evaluate import evaluate
from lit_ner.predict import NerPredictor
from lit_ner.train import train

pytest.importorskip("onnxruntime", reason="the onnx extra: pip install -e '.[dev]'")
SIZE = 400  # built-in corpus sentences: 40 test sentences


@pytest.fixture(scope="module")
def export(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, make_cfg) -> Path:
    """A tiny model trained until it finds entities, exported, then written as ONNX fp32 and int8 by the command."""
    from lit_ner.export_onnx import main

    root = tmp_path_factory.mktemp("onnx")
    train(make_cfg(root / "run", tiny_model, root / "cache", "model.lr=1e-2", "trainer.max_epochs=3", size=SIZE))
    folder = root / "run" / "model"
    main([f"model={folder}", "quantize=int8"])
    return folder


def test_onnx_runtime_gives_the_torch_models_entities(export: Path) -> None:
    from lit_ner.data.books import make_book_corpus  # the built-in corpus, another seed: unseen sentences

    sentences = [" ".join(tokens) for tokens in make_book_corpus(200, seed=7)["train"]["tokens"]]
    words = [s.split() for s in sentences]
    torch_backend = NerPredictor.from_pretrained(export, device="cpu")
    onnx_backend = NerPredictor.from_pretrained(export, backend="onnx")
    expected, got = torch_backend(sentences), onnx_backend(sentences)
    assert sum(map(len, expected)) > 50  # the model does find entities
    strip = lambda found: [[{k: v for k, v in e.items() if k != "score"} for e in s] for s in found]  # noqa: E731
    assert strip(got) == strip(expected)
    for a, b in zip(sum(expected, []), sum(got, [])):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
    assert strip(onnx_backend.words(words)) == strip(torch_backend.words(words))


def eval_cfg(model: Path, out: Path, *overrides: str):
    cache = model.parent.parent / "cache"
    return compose_config(
        "evaluate",
        [f"model.model_name_or_path={model}", f"output_dir={out}", f"data.cache_dir={cache}",
         f"data.synthetic_size={SIZE}", *overrides],
    )  # fmt: skip


def test_evaluate_scores_the_onnx_models_and_int8_stays_close(export: Path, tmp_path: Path) -> None:
    f1 = {}
    for name, overrides in (("torch", []), ("onnx", ["backend=onnx"]), ("int8", ["backend=onnx", "quantize=int8"])):
        report = evaluate(eval_cfg(export, tmp_path / name, *overrides))
        f1[name] = report["scores"]["default"]["micro avg"]["f1"]
    assert f1["torch"] > 0.3, f1
    assert f1["onnx"] == f1["torch"], f1
    assert abs(f1["int8"] - f1["torch"]) <= 0.02, f1  # a 32-wide test model; MiniLM's gap is in docs/benchmarks.md


def test_a_missing_onnx_file_says_how_to_write_it(export: Path, tmp_path: Path) -> None:
    (export / "onnx" / "model_int8.onnx").rename(tmp_path / "aside.onnx")
    try:
        missing = r"no model_int8.onnx in .*python -m lit_ner.export_onnx model=.* quantize=int8"
        with pytest.raises(ConfigError, match=missing):
            NerPredictor.from_pretrained(export, backend="onnx", quantize="int8")
        with pytest.raises(ConfigError, match="backend is torch or onnx"):
            NerPredictor.from_pretrained(export, backend="tensorrt")
    finally:
        (tmp_path / "aside.onnx").rename(export / "onnx" / "model_int8.onnx")
