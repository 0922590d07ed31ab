"""`python -m lit_ner.export_onnx model=<export> [quantize=int8]`: the exported model as ONNX
(`<export>/onnx/model.onnx`, dynamic batch and sequence axes, through torch.onnx.export) and, with `quantize=int8`, ONNX Runtime's dynamic int8
quantization of it (`model_int8.onnx`). `OnnxTokenClassifier` runs either in ONNX Runtime where lit_ner.predict and
lit_ner.evaluate run the torch model (`backend=onnx [quantize=int8]`). Needs the onnx extra:
`pip install 'lit_ner[onnx]'`."""

import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForTokenClassification

from lit_ner.errors import ConfigError, reported

FOLDER = "onnx"
FILES = {None: "model.onnx", "int8": "model_int8.onnx"}
USAGE = "usage: python -m lit_ner.export_onnx model=<export folder> [quantize=int8]"


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
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(folder).expanduser()
    target = onnx_path(folder, quantize)
    if not (folder / "model.safetensors").is_file():
        raise ConfigError(f"model={folder}: no model.safetensors there; give an exported folder (<run>/model)")
    # eager attention: the traced graph then holds no path chosen for the example's shapes (SDPA's mask shortcuts)
    model = AutoModelForTokenClassification.from_pretrained(folder, use_safetensors=True, attn_implementation="eager")
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
        partial = target.with_name("partial-" + target.name)
        # the matrix products only: they are the time; quantizing the embedding lookups (Gather) saves memory, not
        # time, and costs F1 (MiniLM on CoNLL-2003: -1.3 points with them, -0.5 without; docs/benchmarks.md)
        quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
        partial.replace(target)
    return target


class OnnxTokenClassifier:
    """An ONNX Runtime session standing in for the torch model: `model(input_ids=..., attention_mask=...).logits`
    (token_type_ids are all zeros for one sequence, the model's default, and are left out)."""

    device = torch.device("cpu")

    def __init__(self, folder: Path, config: Any, quantize: str | None = None) -> None:
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
        self.config = config

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> SimpleNamespace:
        feeds = {"input_ids": input_ids.cpu().numpy().astype(np.int64),
                 "attention_mask": attention_mask.cpu().numpy().astype(np.int64)}  # fmt: skip
        return SimpleNamespace(logits=torch.from_numpy(self.session.run(["logits"], feeds)[0]))

    def eval(self) -> "OnnxTokenClassifier":
        return self


def main(argv: Sequence[str] | None = None) -> None:
    with reported():
        argv = sys.argv[1:] if argv is None else argv
        args = dict(arg.partition("=")[::2] for arg in argv)
        unknown = [a for a in argv if a.partition("=")[0] not in ("model", "quantize")]
        if unknown or "model" not in args:
            raise ConfigError(f"{f'unknown argument {unknown[0]!r}' if unknown else 'give model='}\n{USAGE}")
        path = export_onnx(Path(args["model"]), args.get("quantize") or None)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
