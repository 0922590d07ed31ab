"""Opening a model, one owner. `inspect_model` says what a name holds without reading its weights (an export, a
Lightning checkpoint or a plain encoder; a local folder or a Hub name): its labels, tokenizer, recorded reading,
head and calibration. `open_model` opens it for a backend and device: that, plus the runner and the head every
reader decodes with. Weights load from safetensors only. transformers only (a checkpoint loads Lightning when
asked): predict and the service stay free of the training stack."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from lit_ner.data.encode import load_tokenizer, position_limit
from lit_ner.data.reading import Reading, check_max_length, default_max_length
from lit_ner.errors import ConfigError
from lit_ner.heads import Head, build_head
from lit_ner.inference import Calibration
from lit_ner.locations import local_or_hub
from lit_ner.runners import RUNNERS, Runner, check_backend

EXPORTED = "Give the folder lit_ner.train exported: <run_dir>/model (config.json, model.safetensors, tokenizer files)."
ANY_MODEL = "Give an exported model (<run>/model), a checkpoint (<run>/checkpoints/best.ckpt) or an encoder."


@dataclass(frozen=True)
class ModelInfo:
    """What a model name holds, read without its weights. `kind`: export (a trained folder or Hub model), checkpoint
    (a lit_ner .ckpt) or encoder (no trained head: its labels come from the data); `source`: where it is read;
    `reading`: the reading keys its training recorded; `head`: its head's record (None: the token head)."""

    name: str
    kind: str
    source: str
    tokenizer: str
    config: PretrainedConfig
    labels: list[str] | None
    reading: Mapping[str, Any]
    head: Mapping[str, Any] | None
    calibration: Calibration

    @property
    def limit(self) -> int | None:
        """The longest row, in sub-tokens, it reads."""
        return position_limit(self.config)


@dataclass
class OpenedModel:
    """A model ready to read: the runner of its head's graph on a backend, its tokenizer, its head (labels and
    decoding), the reading its training recorded (the defaults for the rest, max_length within its positions) and
    its calibration. `graph`: the torch module the runner runs (None on ONNX Runtime)."""

    info: ModelInfo
    runner: Runner
    tokenizer: PreTrainedTokenizerBase
    head: Head
    reading: Reading
    calibration: Calibration
    graph: torch.nn.Module | None = None

    @property
    def labels(self) -> list[str]:
        return self.head.labels

    def read_as(self, settings: Mapping[str, Any], key: str = "max_length") -> Reading:
        """The recorded reading with `settings` (reading keys, None: not given) in place of its own; a max_length
        the model cannot read stops here, naming `key`."""
        reading = Reading.of(self.reading.record() | Reading.given(settings))
        check_max_length(reading.max_length, self.info.limit, self.tokenizer.num_special_tokens_to_add(), key)
        return reading


def labels_of(config: PretrainedConfig) -> list[str]:
    return [config.id2label[i] for i in range(len(config.id2label))]


def inspect_model(name_or_path: str, what_to_give: str = ANY_MODEL) -> ModelInfo:
    """What `name_or_path` holds: a lit_ner export (or any Hub token classifier), a lit_ner checkpoint (.ckpt), or
    a plain encoder."""
    path = Path(name_or_path).expanduser()
    if path.suffix == ".ckpt":
        return _checkpoint_info(name_or_path, path)
    source = local_or_hub(name_or_path, "model", what_to_give)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:  # ValueError: not even a valid Hub name
        reason = str(err).strip().splitlines()[0]  # transformers' first line; the rest is advice on offline mode
        raise ConfigError(
            f"model={name_or_path}: no model folder, checkpoint or Hub model there ({reason}). Without the Hub, give a "
            "local folder; model=minilm is the encoder that ships with lit_ner."
        ) from None
    head = getattr(config, "lit_ner_head", None)
    trained = head is not None or any(a.endswith("ForTokenClassification") for a in config.architectures or [])
    return ModelInfo(
        name_or_path, "export" if trained else "encoder", source, source, config,
        labels_of(config) if trained else None, Reading.given(getattr(config, "lit_ner_data", None)) if trained else {},
        head, Calibration.of(config),
    )  # fmt: skip


def _checkpoint_info(name: str, path: Path) -> ModelInfo:
    from lit_ner.checkpointing import read_checkpoint

    if not path.is_file():
        raise ConfigError(f"model={name}: no checkpoint there (a run keeps them in <run>/checkpoints/)")
    saved = read_checkpoint(path)  # a cut-short, damaged or foreign file stops with what is wrong, not a traceback
    hp = saved["hyper_parameters"]
    encoder = local_or_hub(str(hp["model_name_or_path"]), "model")
    # the tokenizer is the encoder's; the reading, the DataModule's settings the checkpoint was trained with
    reading = Reading.given(saved.get("datamodule_hyper_parameters"))
    return ModelInfo(name, "checkpoint", str(path), encoder, AutoConfig.from_pretrained(encoder), list(hp["labels"]),
                     reading, hp.get("head"), Calibration())  # fmt: skip


def open_model(
    model: str | ModelInfo,
    backend: str = "torch",
    quantize: str | None = None,
    device: str | None = None,
    compile: bool = False,
    labels: Sequence[str] | None = None,
    **options: Any,
) -> OpenedModel:
    """Open a model for reading. `backend`: torch (`compile`: torch.compile; `device`: cuda where there is one
    unless given) or onnx (the export's ONNX model, `quantize=int8` its int8 one; lit_ner.export_onnx writes them);
    `labels`: a plain encoder's (a new random head: the untrained baseline); `options`: to from_pretrained (e.g.
    attn_implementation)."""
    info = model if isinstance(model, ModelInfo) else inspect_model(model)
    check_backend(backend, quantize, compile)
    if backend != "torch" and info.kind != "export":
        raise ConfigError(
            f"backend={backend}: ONNX Runtime reads an exported folder's ONNX model (python -m lit_ner.export_onnx "
            f"model=<run>/model), and model={info.name} is a {info.kind}"
        )
    if info.kind == "encoder" and labels is None:
        raise ConfigError(f"model={info.name} is an encoder without a trained head: {ANY_MODEL}")
    device = device or ("cuda" if torch.cuda.is_available() and backend == "torch" else "cpu")
    head, graph = _head_and_graph(info, backend, device, list(labels) if info.kind == "encoder" else None, options)
    runner = RUNNERS[backend](lambda: graph, head.outputs, info.source, quantize, compile)
    tokenizer = load_tokenizer(info.tokenizer)  # stops on missing tokenizer files rather than tagging every word [UNK]
    reading = Reading.of({"max_length": default_max_length(info.limit)} | dict(info.reading))
    return OpenedModel(info, runner, tokenizer, head, reading, info.calibration, graph)


def _head_and_graph(
    info: ModelInfo, backend: str, device: str, labels: list[str] | None, options: dict[str, Any]
) -> tuple[Head, torch.nn.Module | None]:
    """The head (with its weights) and, on torch, the graph of its model on `device`."""
    if info.kind == "checkpoint":
        module = _checkpoint_module(Path(info.source))
        return module.head, module.head.graph(module.model).to(device)
    if info.kind == "encoder":
        head = build_head(None, labels)
        return head, head.graph(head.load_backbone(info.source).to(device))
    head = build_head(info.head, info.labels)
    if backend != "torch":
        return head, None  # the graph is the ONNX file's; decoding reads only the head's record
    head.attach(info.config)
    head.load(Path(info.source))
    return head, head.graph(load_weights(info.source, head.backbone, **options)).to(device)


def load_weights(name_or_path: str, auto_class: Any, key: str = "model", **options: Any) -> PreTrainedModel:
    """A trained transformers model from a folder or the Hub. Weights from safetensors only, for every command: a
    pickled checkpoint could run code when it loads. `options` go to from_pretrained (e.g. attn_implementation)."""
    try:
        return auto_class.from_pretrained(name_or_path, use_safetensors=True, **options)
    except OSError as err:  # e.g. config.json without model.safetensors: a run or cache folder, not an export
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"{key}={name_or_path}: cannot load a model from it ({reason}). {EXPORTED}") from None


def _checkpoint_module(path: Path) -> Any:
    """The NerModule of a lit_ner checkpoint, weights only (read_checkpoint has checked the file)."""
    import transformers

    from lit_ner.module import NerModule

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the encoder's "newly initialized head" report: the
    try:  # checkpoint's trained head replaces it at once, so it would only mislead
        return NerModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    finally:
        transformers.logging.set_verbosity(verbosity)


def model_name(name_or_path: str) -> str:
    """How a model is named to people (Label Studio's model_version, the service's page): an export by its run's
    folder and the date it was written (`<run> 2026-12-04`), any other folder by its own name, a Hub model as named."""
    folder = Path(name_or_path).expanduser().resolve()
    if not (folder / "config.json").is_file():
        return name_or_path
    stamp = datetime.fromtimestamp((folder / "config.json").stat().st_mtime, timezone.utc).strftime("%Y-%m-%d")
    return f"{folder.parent.name if folder.name == 'model' else folder.name} {stamp}"
