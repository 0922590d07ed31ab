"""Runners: what computes a model's outputs from a batch's inputs, registered in one place (`RUNNERS`): torch,
eager or compiled, and ONNX Runtime, fp32 or int8. Each runs a head's graph (lit_ner.heads): named inputs in, named
outputs out, as NumPy arrays."""

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from lit_ner.errors import ConfigError, needs_extra

Runner = Callable[[Mapping[str, torch.Tensor]], dict[str, np.ndarray]]
ONNX_FOLDER = "onnx"
ONNX_FILES = {None: "model.onnx", "int8": "model_int8.onnx"}


class TorchRunner:
    """A head's graph in torch (lit_ner.heads.Head.graph); with `compile`, torch.compile with frozen weights (faster
    on a CPU once compiled; each new family of shapes compiles first, tens of seconds)."""

    def __init__(self, graph: torch.nn.Module, outputs: Sequence[str], compile: bool = False) -> None:
        self.graph, self.outputs = graph.eval(), tuple(outputs)
        self.model = getattr(graph, "model", graph)  # the transformers model inside
        self.device = next(graph.parameters()).device
        self.compiled = compile
        self.forward = torch.compile(graph, dynamic=True) if compile else graph

    def __call__(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
        twice = self.compiled and len(inputs["input_ids"]) == 1  # a batch of one is a shape of its own: a second compile
        if twice:
            inputs = {k: v.repeat(2, *[1] * (v.dim() - 1)) for k, v in inputs.items()}
        with torch.inference_mode(), self._frozen():
            found = self.forward(**{k: v.to(self.device) for k, v in inputs.items()})
        found = found if isinstance(found, tuple) else (found,)
        return {name: value.float().cpu().numpy()[:1] if twice else value.float().cpu().numpy()
                for name, value in zip(self.outputs, found)}  # fmt: skip

    def _frozen(self) -> contextlib.AbstractContextManager:
        """Frozen weights, which inductor folds into the graph (a global that inductor reads when a graph compiles,
        so set for these calls only)."""
        if not self.compiled:
            return contextlib.nullcontext()
        import torch._inductor.config

        return torch._inductor.config.patch(freezing=True)


def onnx_path(folder: Path, quantize: str | None = None) -> Path:
    """Where an export keeps its ONNX model (`quantize=int8`: its int8 one), written by lit_ner.export_onnx."""
    if quantize not in ONNX_FILES:
        raise ConfigError(f"quantize={quantize}: the one quantization is int8")
    return Path(folder).expanduser() / ONNX_FOLDER / ONNX_FILES[quantize]


class OnnxRunner:
    """An export's ONNX model in ONNX Runtime on the CPU (token_type_ids are all zeros for one sequence, the model's
    default, and are left out of the graph)."""

    def __init__(self, folder: Path, quantize: str | None = None) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError(f"backend=onnx needs onnxruntime, the onnx extra: {needs_extra('onnx')}") from None
        path = onnx_path(folder, quantize)
        if not path.is_file():
            flag = f" quantize={quantize}" if quantize else ""
            raise ConfigError(
                f"backend=onnx: no {path.name} in {path.parent}. Write it once with: "
                f"python -m lit_ner.export_onnx model={folder}{flag}"
            )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.outputs = [output.name for output in self.session.get_outputs()]

    def __call__(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
        feeds = {name: inputs[name].cpu().numpy().astype(np.int64) for name in (i.name for i in self.session.get_inputs())}
        return dict(zip(self.outputs, self.session.run(self.outputs, feeds)))


# backend name -> how to make its runner from (the head's graph and output names, the export folder, options)
RUNNERS: dict[str, Callable[..., Runner]] = {
    "torch": lambda graph, outputs, folder, quantize=None, compile=False: TorchRunner(graph(), outputs, compile),
    "onnx": lambda graph, outputs, folder, quantize=None, compile=False: OnnxRunner(folder, quantize),
}


def check_backend(backend: str, quantize: str | None, compile: bool) -> None:
    """The backend options that go together: torch (compile=true), or onnx (quantize=int8)."""
    if backend not in RUNNERS or (quantize is not None and backend != "onnx"):
        raise ConfigError(f"backend={backend}, quantize={quantize}: backend is torch or onnx; quantize=int8 needs onnx")
    if compile and backend != "torch":
        raise ConfigError("compile=true compiles the torch model: not with backend=onnx")


class Replay:
    """A runner that answers with outputs the same model already gave for the same inputs (`recorded`: (inputs,
    outputs) pairs, such as training's validation pass of the epoch it exports) and runs `fallback` on any other."""

    def __init__(self, recorded: Sequence[tuple[Mapping[str, torch.Tensor], dict[str, np.ndarray]]], fallback: Runner) -> None:
        self.recorded = {self._key(inputs): outputs for inputs, outputs in recorded}
        self.fallback, self.replayed = fallback, 0

    @staticmethod
    def _key(inputs: Mapping[str, Any]) -> tuple:
        return tuple((name, tuple(v.shape), v.cpu().numpy().tobytes()) for name, v in sorted(inputs.items()))

    def __call__(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
        outputs = self.recorded.get(self._key(inputs))
        if outputs is None:
            return self.fallback(inputs)
        self.replayed += 1
        return outputs
