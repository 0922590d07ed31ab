"""ONNX export and the ONNX Runtime backend (`python -m lit_ner.export_onnx`, `backend=onnx [quantize=int8]` in
predict and evaluate): the fp32 graph gives the torch model's entities, int8 stays close in test F1, and a missing
ONNX file says how to write it."""

import re
from pathlib import Path

import pytest
import torch

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


def test_int8_keeps_the_matmul_with_outlier_inputs_in_fp32(export: Path, tmp_path: Path, monkeypatch) -> None:
    """One hidden unit of layer 0's feed-forward made 40 times larger: the measured spread of layer 0's FFN output
    product stands out, and int8 leaves that product (the one above the threshold) in fp32, quantizes the others and
    says so in onnx/quantization.json. (A 64-wide test model cannot reach MiniLM's spreads, so the threshold is set
    between the largest spread and the next.)"""
    import json
    import shutil

    import onnx
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from lit_ner import export_onnx as module

    folder = tmp_path / "model"
    shutil.copytree(export, folder, ignore=shutil.ignore_patterns("onnx"))
    model = AutoModelForTokenClassification.from_pretrained(folder)
    with torch.no_grad():
        dense = model.bert.encoder.layer[0].intermediate.dense
        dense.weight[3] *= 40
        dense.bias[3] = 40.0
    model.save_pretrained(folder)
    spreads = module.input_spreads(model.eval(), AutoTokenizer.from_pretrained(folder))
    first, second = sorted(spreads.values(), reverse=True)[:2]
    kept = "/model/bert/encoder/layer.0/output/dense/MatMul"
    assert spreads[kept] == first > 1.5 * second, spreads
    monkeypatch.setattr(module, "OUTLIER_RATIO", (first + second) / 2)
    module.export_onnx(folder, "int8")
    record = json.loads((folder / "onnx" / "quantization.json").read_text())
    assert record["kept_fp32"] == [kept], record
    nodes = {n.name: n.op_type for n in onnx.load(str(folder / "onnx" / "model_int8.onnx")).graph.node}
    assert nodes[kept] == "MatMul"  # still the fp32 product
    quantized = [name for name in spreads if name != kept]
    assert len(quantized) >= 8 and all(nodes.get(name) != "MatMul" for name in quantized)
    assert sum(op == "MatMulInteger" for op in nodes.values()) == len(quantized)


def test_the_inference_benchmark_prints_each_backends_table_row(export: Path, tmp_path: Path, capsys) -> None:
    from benchmarks.predict import main
    from lit_ner.data.books import make_book_corpus

    sentences = make_book_corpus(200, seed=7)["train"]
    conll = tmp_path / "test.txt"
    conll.write_text("".join("".join(f"{w} {t}\n" for w, t in zip(s["tokens"], s["tags"])) + "\n" for s in sentences))
    cache = export.parent.parent / "cache"
    main(["--model", str(export), "--data", str(conll), "--sentences", "60", "--threads", "1", "--compiled",
          "--clients", "4", "--rounds", "2",
          "--evaluate", f"data.cache_dir={cache} data.synthetic_size={SIZE}"])  # fmt: skip
    out = capsys.readouterr().out
    rows = {line.split(" | ")[0].strip("| "): line.strip("|").split(" | ") for line in out.splitlines()
            if line.startswith("| transformers") or line.startswith("| NerPredictor")}  # fmt: skip
    # the bound on an fp32 forward: torch's FLOP count over the batches, at torch's matmul rate; above every fp32 side
    bound = re.search(r"is ([\d.]+) GFLOP .* no fp32 forward passes (\d+) sentences/s", out)
    assert bound and float(bound[1]) > 0
    assert all(int(bound[2]) > float(rows[side][1]) for side in rows if "int8" not in side)
    assert len(rows) == 6
    # the service under load, each round beside an offline run: sentences/s, the ratio, latency percentiles
    load = re.search(r"\(2 rounds, each beside an offline run\): ([\d.]+) sentences/s, ([\d.]+)× offline .* "
                     r"p50 (\d+) ms, p99 (\d+) ms; the clients themselves used (\d+)% of the 1 CPU", out)  # fmt: skip
    assert load and float(load[1]) > 0 and float(load[2]) > 0 and int(load[3]) <= int(load[4])
    assert rows["NerPredictor, torch"][3] == "1.00"  # its ratio to itself
    assert rows["NerPredictor, torch"][4].strip() == "100.00%"  # the same entities as the pipeline's
    assert rows["NerPredictor, torch compiled"][4].strip() == "100.00%"
    assert rows["NerPredictor, ONNX Runtime fp32"][4].strip() == "100.00%"
    torch_f1 = evaluate(eval_cfg(export, tmp_path / "torch"))["scores"]["default"]["micro avg"]["f1"]
    assert float(rows["NerPredictor, torch"][6]) == pytest.approx(torch_f1, abs=5e-5)  # lit_ner.evaluate's own F1
    assert float(rows["NerPredictor, ONNX Runtime fp32"][6]) == pytest.approx(torch_f1, abs=5e-5)
    assert rows["transformers.pipeline (default)"][6].strip() == "–"
