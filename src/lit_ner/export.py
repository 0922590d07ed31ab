"""Export a trained NerModule as a plain Hugging Face folder: safetensors weights, labelled config, tokenizer, model card."""

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from lit_ner.errors import space_for
from lit_ner.module import NerModule
from lit_ner.reports import entity_rows, markdown_table


def model_card(module: NerModule, data: Mapping[str, Any], scores: Mapping[str, float], meta: Mapping[str, Any]) -> str:
    hp = dict(module.hparams)
    source = data.get("path") or data.get("hub_name") or f"built-in {data.get('synthetic')} corpus ({data.get('synthetic_size')} sentences)"
    test_rows = entity_rows(scores, "test")
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: token-classification",
        "tags: [lit_ner, ner]",
        "---",
        f"# NER model fine-tuned from `{hp['model_name_or_path']}` with lit_ner",
        "",
        f"- **Data:** {source}",
        f"- **Tag scheme:** source data `{meta.get('scheme')}`, trained as `{meta.get('train_scheme')}`; "
        f"labels: {', '.join(module.labels)}",
        "- **Splits:** " + ", ".join(f"{k} {v['sentences']} sentences" for k, v in meta.get("splits", {}).items()),
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
        "```python",
        "from transformers import pipeline",
        'ner = pipeline("token-classification", model="<this folder>", aggregation_strategy="simple")',
        "```",
    ]
    return "\n".join(lines) + "\n"


def export_model(
    module: NerModule,
    tokenizer: PreTrainedTokenizerBase,
    folder: Path,
    data: Mapping[str, Any],
    scores: Mapping[str, float],
    meta: Mapping[str, Any],
) -> Path:
    """Write the folder `transformers.pipeline` and `NerPredictor` load: label names and data.context travel in
    config.json."""
    # how sentences were read in training travels in config.json, where NerPredictor finds it (transformers keeps
    # unknown config keys as attributes, and pipeline ignores them)
    module.model.config.lit_ner_data = {key: data.get(key) for key in ("context", "context_tokens")}
    # written whole beside the folder, then renamed into place: a full disk or a kill leaves no half export
    partial = folder.with_name(folder.name + ".partial")
    needed = sum(p.numel() * p.element_size() for p in module.model.state_dict().values())
    then = f"run again with ckpt_path={folder.parent}: a finished run only tests and exports."
    with space_for("the exported model", folder.parent, needed, then):
        try:
            shutil.rmtree(partial, ignore_errors=True)
            module.model.save_pretrained(partial, safe_serialization=True)
            tokenizer.save_pretrained(partial)
            (partial / "README.md").write_text(model_card(module, data, scores, meta), encoding="utf-8")
            if folder.exists():  # the same run exported before (a resumed run exports again)
                shutil.rmtree(folder)
            partial.rename(folder)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return folder
