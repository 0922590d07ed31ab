"""Export a trained NerModule as a Hugging Face folder: safetensors weights, labelled config (with the reading, the
head and the calibration lit_ner records), tokenizer, model card; a span head's own weights beside them."""

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

import lit_ner

from lit_ner import files
from lit_ner.data.reading import Reading
from lit_ner.errors import space_for
from lit_ner.module import NerModule
from lit_ner.reports import entity_rows, markdown_table


def card_metadata(module: NerModule, data: Mapping[str, Any], scores: Mapping[str, float], name: str) -> str:
    """The card's YAML block as the Hub reads it (huggingface_hub's own ModelCardData): library, task, base model
    and dataset where they are Hub names, and a `model-index` with the test scores."""
    from huggingface_hub import EvalResult, ModelCardData

    base = str(module.hparams["model_name_or_path"])
    hub_data = data.get("hub_name")
    dataset_name = hub_data or Path(str(data.get("path") or "built-in")).name
    dataset = {"dataset_type": hub_data or "local", "dataset_name": dataset_name}
    results = [
        EvalResult(
            task_type="token-classification", task_name="Named entity recognition", dataset_split="test",
            metric_type=kind, metric_value=round(scores[f"test/{kind}"], 4), metric_name=f"Test {kind} (entity level)",
            **dataset,
        )
        for kind in ("f1", "precision", "recall")
        if f"test/{kind}" in scores
    ]  # fmt: skip
    metadata = ModelCardData(
        library_name="transformers", pipeline_tag="token-classification", tags=["lit_ner", "ner"],
        base_model=None if Path(base).expanduser().exists() else base, datasets=[hub_data] if hub_data else None,
        model_name=name, eval_results=results or None,
    )  # fmt: skip
    return metadata.to_yaml()


# a path of the machine that trained the model, inside a command line: absolute or home-relative, up to a separator
_LOCAL_PATH = re.compile(r"(?<![\w.:/~-])~?/[^\s,\]}'\"]*")


def local_names(value: Any) -> Any:
    """`value` (a string, or lists and dicts of them) with each local path (absolute, home-relative or an existing
    file or folder) as its last part: the card travels to the Hub, and names files, not where they sat."""
    if isinstance(value, Mapping):
        return {k: local_names(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [local_names(v) for v in value]
    if isinstance(value, str) and value.strip() and (value.startswith(("/", "~")) or Path(value).exists()):
        return Path(value).name or value
    return value


def shown_command(command: str) -> str:
    """The command line for the card: the cache folder left out, local paths by their names (`local_names`)."""
    command = re.sub(r"\s*\S*cache_dir=\S*", "", command)
    return _LOCAL_PATH.sub(lambda path: Path(path[0]).name or path[0], command)


def model_card(
    module: NerModule,
    data: Mapping[str, Any],
    scores: Mapping[str, float],
    meta: Mapping[str, Any],
    name: str = "model",
    command: str | None = None,
) -> str:
    hp = local_names(dict(module.hparams))
    data = local_names({k: v for k, v in data.items() if k != "cache_dir"})
    source = data.get("path") or data.get("hub_name") or f"built-in {data.get('synthetic')} corpus ({data.get('synthetic_size')} sentences)"
    test_rows = entity_rows(scores, "test")
    trained = f"`{shown_command(command)}`" if command else "`lit_ner.train` (in-process)"
    lines = [
        "---",
        card_metadata(module, data, scores, name),
        "---",
        f"# NER model fine-tuned from `{hp['model_name_or_path']}` with lit_ner {lit_ner.__version__}",
        "",
        f"- **Data:** {source}",
        f"- **Tag scheme:** source data `{meta.get('scheme')}`, trained as `{meta.get('train_scheme')}`; "
        f"labels: {', '.join(module.labels)}",
        "- **Splits:** " + ", ".join(f"{k} {v['sentences']} sentences" for k, v in meta.get("splits", {}).items()),
        f"- **Trained with:** {trained}",
        "",
        "## Hyper-parameters",
        "",
        "```json",
        json.dumps({k: v for k, v in hp.items() if k != "labels"} | {"data": dict(data)}, indent=1, default=str),
        "```",
        "",
        "## Test scores (entity level, seqeval default mode)",
        "",
        markdown_table(test_rows) if test_rows else "No test split was scored.",
        "",
        f"Strict IOB2 micro F1: {scores['test/strict_f1']:.4f}" if "test/strict_f1" in scores else "",
        "",
        "## Use",
        "",
        *usage(module.head.name),
    ]
    return "\n".join(lines) + "\n"


def usage(head: str) -> list[str]:
    """The model card's "Use" lines: transformers' pipeline reads a token head's export; every head's, lit_ner."""
    lines = ["```python", "from lit_ner.predictor import NerPredictor",
             'ner = NerPredictor.from_pretrained("<this folder>")', 'ner("Alan Walker wrote it in 1940.")', "```"]  # fmt: skip
    if head == "token":
        lines += ["", "or with transformers alone:", "", "```python", "from transformers import pipeline",
                  'ner = pipeline("token-classification", model="<this folder>", aggregation_strategy="simple")', "```"]  # fmt: skip
    else:
        lines += ["", f"A {head} head: `transformers.pipeline` cannot read its decoding; use lit_ner."]
    return lines


def export_model(
    module: NerModule,
    tokenizer: PreTrainedTokenizerBase,
    folder: Path,
    data: Mapping[str, Any],
    scores: Mapping[str, float],
    meta: Mapping[str, Any],
    name: str | None = None,
    command: str | None = None,
    calibration: Mapping[str, Any] | None = None,
) -> Path:
    """Write the folder `NerPredictor` (and, for the token head, `transformers.pipeline`) loads: label names, the
    reading training used (`lit_ner_data`), the head (`lit_ner_head`) and the calibration (`lit_ner_calibration`:
    the temperature) travel in config.json."""
    # how sentences were read in training (rows, windows, context, pre-tokenizer) and which head reads the encoder
    # travel in config.json, where every later reading finds them (transformers keeps unknown config keys as
    # attributes, and pipeline ignores them); the token head records none, so its export is transformers' own
    module.model.config.lit_ner_data = Reading.of(data).record()
    if module.head.name != "token":
        module.model.config.lit_ner_head = module.head.record()
    labels = {"id2label": dict(enumerate(module.labels)), "label2id": {label: i for i, label in enumerate(module.labels)}}
    module.model.config.update(labels)  # a span head's encoder has no classifier, but its export names the labels
    if calibration:  # the temperature fitted on validation (lit_ner.inference.Calibration)
        module.model.config.lit_ner_calibration = dict(calibration)
    # written whole beside the folder, then swapped with the old one in one step (lit_ner.files.replaced): at every
    # moment, a kill or a full disk included, the folder holds a whole model, the old one or the new one
    needed = sum(p.numel() * p.element_size() for p in module.model.state_dict().values())
    then = f"run again with ckpt_path={folder.parent}: a finished run only tests and exports."
    with space_for("the exported model", folder.parent, needed, then), files.replaced(folder) as partial:
        module.model.save_pretrained(partial, safe_serialization=True)
        module.head.save(partial)
        tokenizer.save_pretrained(partial)
        card = model_card(module, data, scores, meta, name or folder.parent.name, command)
        (partial / "README.md").write_text(card, encoding="utf-8")
    return folder
