"""Loading a model, one owner: "is this a local folder or a Hub name?" with one set of messages, one weights policy
(safetensors only for a trained token classifier), what a name holds (an export, a Lightning checkpoint, a plain
encoder), and the reading and calibration an export records. transformers only (a checkpoint loads Lightning when
asked): predict stays free of the training stack."""

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoModelForTokenClassification, PretrainedConfig, PreTrainedModel

from lit_ner.errors import ConfigError

# what every "no such folder" message ends with, unless the command knows better what to give
WHAT_TO_GIVE = (
    "Give a folder holding config.json and tokenizer files (an export: <run>/model), or a Hub name when the Hub "
    "is reachable (model=minilm is the encoder that ships with lit_ner)."
)


def local_or_hub(name_or_path: str, key: str, what_to_give: str = WHAT_TO_GIVE) -> str:
    """`name_or_path` as transformers should read it: an existing folder as its expanded path (transformers reads
    "~/..." as a Hub name), anything else unchanged, as a Hub name.

    Stops with `key=value` and `what_to_give` for a file, a folder without config.json, and a path that does not
    exist but cannot be a Hub name either: absolute, starting with . or ~, or with more than one / (a Hub name is
    owner/model at most), so a mistyped relative path says "no such folder", not the Hub's rules for names.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{key}={name_or_path}: the folder has no config.json. {what_to_give}")
        return str(path)
    if path.exists():
        raise ConfigError(f"{key}={name_or_path}: not a folder. {what_to_give}")
    if path.is_absolute() or name_or_path.startswith((".", "~")) or name_or_path.count("/") > 1:
        raise ConfigError(f"{key}={name_or_path}: no such folder. {what_to_give}")
    return name_or_path


# the data settings that decide how sentences become model rows (lit_ner.inference.Reading's fields)
READING_KEYS = ("max_length", "window_context", "context", "context_tokens", "label_all_tokens", "pretokenizer")
EXPORTED = "Give the folder lit_ner.train exported: <run_dir>/model (config.json, model.safetensors, tokenizer files)."


def load_classifier(
    name_or_path: str, key: str = "model", what_to_give: str = EXPORTED, **options: Any
) -> PreTrainedModel:
    """A trained token classifier from a folder or the Hub. Weights from safetensors only, for every command: a
    pickled checkpoint could run code when it loads. `options` go to from_pretrained (e.g. attn_implementation)."""
    source = local_or_hub(name_or_path, key, what_to_give)
    try:
        return AutoModelForTokenClassification.from_pretrained(source, use_safetensors=True, **options)
    except OSError as err:  # e.g. config.json without model.safetensors: a run or cache folder, not an export
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"{key}={name_or_path}: cannot load a model from it ({reason}). {what_to_give}") from None


def load_for_evaluation(name_or_path: str) -> tuple[PreTrainedModel | None, list[str] | None, str, dict[str, Any]]:
    """(model, its labels, its tokenizer, the data settings it was trained with) of an exported folder, a Lightning
    checkpoint or a Hub model with a token-classification head; (None, None, name_or_path, {}) for a plain encoder
    (its head needs the data's labels: the zero-shot baseline)."""
    what_to_give = "Give an exported model (<run>/model), a checkpoint (<run>/checkpoints/best.ckpt) or an encoder."
    if Path(name_or_path).expanduser().suffix == ".ckpt":
        return _checkpoint(Path(name_or_path).expanduser())
    source = local_or_hub(name_or_path, "model", what_to_give)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:  # ValueError: not even a valid Hub name
        raise ConfigError(
            f"model={name_or_path}: no model folder, checkpoint or Hub model there ({err}). Without the Hub, give a "
            "local folder; model=minilm is the encoder that ships with lit_ner."
        ) from None
    if not any(a.endswith("ForTokenClassification") for a in config.architectures or []):
        return None, None, source, {}
    model = load_classifier(source, what_to_give=what_to_give)
    return model, labels_of(config), source, recorded_reading(config)


def _checkpoint(path: Path) -> tuple[PreTrainedModel, list[str], str, dict[str, Any]]:
    import transformers

    from lit_ner.checkpointing import read_checkpoint
    from lit_ner.module import NerModule

    if not path.is_file():
        raise ConfigError(f"model={path}: no checkpoint there (a run keeps them in <run>/checkpoints/)")
    saved = read_checkpoint(path)  # a cut-short, damaged or foreign file stops with what is wrong, not a traceback
    data = saved.get("datamodule_hyper_parameters") or {}
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the encoder's "newly initialized head" report: the
    try:  # checkpoint's trained head replaces it at once, so it would only mislead
        module = NerModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    finally:
        transformers.logging.set_verbosity(verbosity)
    # the tokenizer is the encoder's; the reading, the DataModule's settings the checkpoint was trained with
    reading = {k: data[k] for k in READING_KEYS if data.get(k) is not None}
    return module.model, module.labels, module.hparams.model_name_or_path, reading


def labels_of(config: PretrainedConfig) -> list[str]:
    return [config.id2label[i] for i in range(len(config.id2label))]


def recorded_reading(config: Any) -> dict[str, Any]:
    """The data settings an export records about its training's reading (config.json `lit_ner_data`; see
    lit_ner.inference.Reading): only the keys it has."""
    recorded = getattr(config, "lit_ner_data", None) or {}
    return {k: recorded[k] for k in READING_KEYS if recorded.get(k) is not None}


def model_name(name_or_path: str) -> str:
    """How a model is named to people (Label Studio's model_version, the service's page): an export by its run's
    folder and the date it was written (`<run> 2026-12-04`), any other folder by its own name, a Hub model as named."""
    folder = Path(name_or_path).expanduser().resolve()
    if not (folder / "config.json").is_file():
        return name_or_path
    stamp = datetime.fromtimestamp((folder / "config.json").stat().st_mtime, timezone.utc).strftime("%Y-%m-%d")
    return f"{folder.parent.name if folder.name == 'model' else folder.name} {stamp}"
