"""`python -m lit_ner.export_onnx model=<export> [quantize=int8]`: the exported model's head graph as ONNX
(`<export>/onnx/model.onnx`, dynamic batch, sequence and span axes, through torch.onnx.export) and, with
`quantize=int8`, ONNX Runtime's dynamic int8 quantization of it (`model_int8.onnx`). lit_ner.predict, evaluate and
the service run either with `backend=onnx [quantize=int8]` (lit_ner.runners.OnnxRunner). Needs the onnx extra."""

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lit_ner import files
from lit_ner.data.encode import encode_rows
from lit_ner.errors import ConfigError, key_values, needs_extra, reported
from lit_ner.models import EXPORTED, inspect_model, open_model
from lit_ner.runners import onnx_path

USAGE = "usage: python -m lit_ner.export_onnx model=<export folder> [quantize=int8]"
ABOUT = """Write an export's ONNX model, <export>/onnx/model.onnx (and with quantize=int8 model_int8.onnx, its matrix
products in int8); predict, evaluate and serve then read it in ONNX Runtime with backend=onnx. Needs the onnx
extra: """ + needs_extra("onnx") + """.

examples:
  python -m lit_ner.export_onnx model=outputs/quickstart/<run>/model
  python -m lit_ner.export_onnx model=<run>/model quantize=int8
  python -m lit_ner.predict model=<run>/model backend=onnx quantize=int8 text="Alan Walker wrote it in 1940."
"""
OPTIONS = {"model": "an export (<run>/model)", "quantize": "int8: also the int8 model (dynamic quantization)"}
# int8 keeps in fp32 the matrix products whose input spans more than this many standard deviations on the calibration
# sentences: ONNX Runtime quantizes each activation tensor with one 8-bit step of range/255, too coarse for the
# outliers a BERT FFN output reads (MiniLM: 89, 85 and 68 in layers 0-2, every other input under 55; docs/benchmarks.md)
OUTLIER_RATIO = 60
# the axes of the graph's inputs and outputs that vary from batch to batch
AXES = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
        "logits": {0: "batch", 1: "sequence"}, "span_starts": {0: "batch", 1: "spans"},
        "span_ends": {0: "batch", 1: "spans"}, "span_widths": {0: "batch", 1: "spans"},
        "span_logits": {0: "batch", 1: "spans"}}  # fmt: skip


def export_onnx(folder: Path, quantize: str | None = None) -> Path:
    """Write `<folder>/onnx/model.onnx` (and with quantize=int8 `model_int8.onnx`); returns the file asked for.
    Each file is written under another name and renamed into place (lit_ner.files): whole or absent."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise ConfigError(f"python -m lit_ner.export_onnx needs the onnx extra: {needs_extra('onnx')}") from None

    folder = Path(folder).expanduser()
    target = onnx_path(folder, quantize)
    if not (folder / "model.safetensors").is_file():
        raise ConfigError(f"model={folder}: no model.safetensors there; give an exported folder (<run>/model)")
    # eager attention: the traced graph then holds no path chosen for the example's shapes (SDPA's mask shortcuts)
    opened = open_model(inspect_model(str(folder), EXPORTED), device="cpu", attn_implementation="eager")
    graph, head = opened.graph.eval(), opened.head  # eval: the exporter restores the graph's mode afterwards
    rows = encode_rows(opened.tokenizer, [["Alan", "Walker", "wrote", "it", "."], ["In", "1940", "."]], 32, 0)
    example = head.batch_inputs([row for _, row in rows], opened.tokenizer.pad_token_id or 0)
    fp32 = onnx_path(folder, None)
    fp32.parent.mkdir(exist_ok=True)
    with files.replaced(fp32) as partial:
        torch.onnx.export(
            graph, tuple(example[name] for name in head.inputs), str(partial), input_names=list(head.inputs),
            output_names=list(head.outputs), dynamic_axes={name: AXES[name] for name in (*head.inputs, *head.outputs)},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    if quantize == "int8":
        ratios = input_spreads(graph.model, opened.tokenizer)
        kept = sorted(name for name, ratio in ratios.items() if ratio > OUTLIER_RATIO)
        missing = set(kept) - {node.name for node in onnx.load(str(fp32), load_external_data=False).graph.node}
        if missing:  # the exporter named the nodes otherwise: say so rather than quantize what should stay fp32
            raise RuntimeError(f"no ONNX nodes {sorted(missing)} in {fp32}: a lit_ner defect, please report it")
        # the matrix products only: they are the time; quantizing the embedding lookups (Gather) saves memory, not
        # time, and costs F1 (MiniLM on CoNLL-2003: -1.3 points with them; docs/benchmarks.md)
        with files.replaced(target) as partial:
            quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                             nodes_to_exclude=kept)  # fmt: skip
        record = {"kept_fp32": kept, "outlier_ratio": OUTLIER_RATIO, "input_range_per_std": ratios}
        files.write_text(target.parent / "quantization.json", json.dumps(record, indent=1))
    return target


def onnx_node(module_name: str) -> str:
    """The name torch.onnx.export gives a Linear's MatMul: `model.bert.encoder.layer.0.output.dense` (a submodule of
    the head's graph) becomes `/model/bert/encoder/layer.0/output/dense/MatMul`."""
    return "/" + re.sub(r"/(\d+)(?=/|$)", r".\1", f"model.{module_name}".replace(".", "/")) + "/MatMul"


@torch.inference_mode()
def input_spreads(model: torch.nn.Module, tokenizer: Any, sentences: int = 256) -> dict[str, float]:
    """{ONNX MatMul name: (max - min) / std of its input} of each Linear of the model, over sentences of lit_ner's
    built-in corpus read in batches of 32 with their padding, as ONNX Runtime will see them. The outliers of BERT-type
    encoders sit in the same hidden dimensions whatever the text (the same layers stand out on CoNLL-2003 dev)."""
    from lit_ner.data.books import make_book_corpus

    texts = [" ".join(t) for t in make_book_corpus(sentences, seed=0)["train"]["tokens"]]
    spreads: dict[str, list[float]] = {}

    def record(name: str):
        def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            x = inputs[0].float()
            spreads.setdefault(name, []).append(float((x.max() - x.min()) / x.std()))

        return hook

    hooks = [module.register_forward_hook(record(onnx_node(name)))
             for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]  # fmt: skip
    try:
        for start in range(0, len(texts), 32):
            model(**tokenizer(texts[start : start + 32], padding=True, truncation=True, return_tensors="pt"))
    finally:
        for hook in hooks:
            hook.remove()
    return {name: round(sum(values) / len(values), 2) for name, values in spreads.items()}


def main(argv: Sequence[str] | None = None) -> None:
    with reported():
        argv = sys.argv[1:] if argv is None else argv
        args = key_values(argv, OPTIONS, ("model",), USAGE, ABOUT)
        path = export_onnx(Path(args["model"]), args.get("quantize") or None)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
