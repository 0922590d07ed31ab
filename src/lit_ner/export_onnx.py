"""`python -m lit_ner.export_onnx model=<export> [quantize=int8]`: the exported model as ONNX
(`<export>/onnx/model.onnx`, dynamic batch and sequence axes, through torch.onnx.export) and, with `quantize=int8`, ONNX Runtime's dynamic int8
quantization of it (`model_int8.onnx`). `OnnxTokenClassifier` runs either in ONNX Runtime where lit_ner.predict and
lit_ner.evaluate run the torch model (`backend=onnx [quantize=int8]`). Needs the onnx extra:
`pip install 'lit_ner[onnx]'`."""

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer

from lit_ner.errors import ConfigError, key_values, reported
from lit_ner.models import load_classifier

FOLDER = "onnx"
FILES = {None: "model.onnx", "int8": "model_int8.onnx"}
USAGE = "usage: python -m lit_ner.export_onnx model=<export folder> [quantize=int8]"
# int8 keeps in fp32 the matrix products whose input spans more than this many standard deviations on the calibration
# sentences: ONNX Runtime quantizes each activation tensor with one 8-bit step of range/255, too coarse for the
# outliers a BERT FFN output reads (MiniLM: 89, 85 and 68 in layers 0-2, every other input under 55; docs/benchmarks.md)
OUTLIER_RATIO = 60


class _Logits(torch.nn.Module):
    """The token classifier as ONNX sees it: input ids and attention mask in, logits out."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def onnx_path(folder: Path, quantize: str | None = None) -> Path:
    if quantize not in FILES:
        raise ConfigError(f"quantize={quantize}: the one quantization is int8")
    return Path(folder) / FOLDER / FILES[quantize]


def export_onnx(folder: Path, quantize: str | None = None) -> Path:
    """Write `<folder>/onnx/model.onnx` (and with quantize=int8 `model_int8.onnx`); returns the file asked for.
    Each file is written under another name and renamed into place: whole or absent."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(folder).expanduser()
    target = onnx_path(folder, quantize)
    if not (folder / "model.safetensors").is_file():
        raise ConfigError(f"model={folder}: no model.safetensors there; give an exported folder (<run>/model)")
    # eager attention: the traced graph then holds no path chosen for the example's shapes (SDPA's mask shortcuts)
    model = load_classifier(str(folder), attn_implementation="eager")
    wrapper = _Logits(model).eval()  # eval: the exporter restores the wrapper's mode afterwards
    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    fp32 = onnx_path(folder, None)
    fp32.parent.mkdir(exist_ok=True)
    partial = fp32.with_name("partial-" + fp32.name)
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        wrapper, example, str(partial), input_names=["input_ids", "attention_mask"], output_names=["logits"],
        dynamic_axes={name: axes for name in ("input_ids", "attention_mask", "logits")},
        opset_version=17, dynamo=False,
    )  # fmt: skip
    partial.replace(fp32)
    if quantize == "int8":
        ratios = input_spreads(model, AutoTokenizer.from_pretrained(folder))
        kept = sorted(name for name, ratio in ratios.items() if ratio > OUTLIER_RATIO)
        missing = set(kept) - {node.name for node in onnx.load(str(fp32), load_external_data=False).graph.node}
        if missing:  # the exporter named the nodes otherwise: say so rather than quantize what should stay fp32
            raise RuntimeError(f"no ONNX nodes {sorted(missing)} in {fp32}: a lit_ner defect, please report it")
        partial = target.with_name("partial-" + target.name)
        # the matrix products only: they are the time; quantizing the embedding lookups (Gather) saves memory, not
        # time, and costs F1 (MiniLM on CoNLL-2003: -1.3 points with them; docs/benchmarks.md)
        quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         nodes_to_exclude=kept)  # fmt: skip
        partial.replace(target)
        record = {"kept_fp32": kept, "outlier_ratio": OUTLIER_RATIO, "input_range_per_std": ratios}
        (target.parent / "quantization.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return target


def onnx_node(module_name: str) -> str:
    """The name torch.onnx.export gives a Linear's MatMul: `model.bert.encoder.layer.0.output.dense` (a submodule of
    `_Logits`) becomes `/model/bert/encoder/layer.0/output/dense/MatMul`."""
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


class OnnxTokenClassifier:
    """An ONNX Runtime session as lit_ner's runner (`lit_ner.inference`): logits of (input_ids, attention_mask)
    (token_type_ids are all zeros for one sequence, the model's default, and are left out)."""

    def __init__(self, folder: Path, quantize: str | None = None) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError("backend=onnx needs onnxruntime: pip install 'lit_ner[onnx]'") from None
        path = onnx_path(Path(folder).expanduser(), quantize)
        if not path.is_file():
            flag = f" quantize={quantize}" if quantize else ""
            raise ConfigError(
                f"backend=onnx: no {path.name} in {path.parent}. Write it once with: "
                f"python -m lit_ner.export_onnx model={folder}{flag}"
            )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        feeds = {"input_ids": input_ids.cpu().numpy().astype(np.int64),
                 "attention_mask": attention_mask.cpu().numpy().astype(np.int64)}  # fmt: skip
        return self.session.run(["logits"], feeds)[0]


def main(argv: Sequence[str] | None = None) -> None:
    with reported():
        argv = sys.argv[1:] if argv is None else argv
        args = key_values(argv, ("model", "quantize"), ("model",), USAGE)
        path = export_onnx(Path(args["model"]), args.get("quantize") or None)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
