"""The token head: transformers' token classification, a softmax over each word's first sub-token (or, read with
another aggregation, over all its sub-tokens). Its export is a plain transformers folder that
`pipeline("token-classification")` loads."""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForTokenClassification, PreTrainedModel

from lit_ner.data.align import IGNORE
from lit_ner.data.encode import Row
from lit_ner.data.schemes import entity_spans
from lit_ner.errors import ConfigError
from lit_ner.heads.base import Decoded, EntitySpan, Evidence, Head, scored_positions, softmax
from lit_ner.locations import local_or_hub

log = logging.getLogger(__name__)
AGGREGATIONS = ("first", "average", "max")  # how a word's sub-token scores become the word's


def load_token_classifier(name_or_path: str, labels: list[str], label_mismatch: str = "error") -> PreTrainedModel:
    """Load the encoder with a head for `labels`. A model that already has a token-classification head
    for other labels stops with the difference shown, unless `label_mismatch` is "remap" (same labels in
    another order: the head's rows are permuted) or "reinit" (a new head for the data's labels)."""
    if label_mismatch not in ("error", "remap", "reinit"):
        raise ConfigError(f"label_mismatch={label_mismatch!r}: use error, remap or reinit")
    name_or_path = local_or_hub(name_or_path, "model.model_name_or_path")
    config = AutoConfig.from_pretrained(name_or_path)
    trained = [config.id2label[i] for i in range(len(config.id2label))] if config.id2label else []
    has_head = any(a.endswith("ForTokenClassification") for a in config.architectures or [])
    names = {"id2label": dict(enumerate(labels)), "label2id": {label: i for i, label in enumerate(labels)}}
    if not has_head or trained == labels:
        return AutoModelForTokenClassification.from_pretrained(name_or_path, num_labels=len(labels), **names)
    difference = f"the model has labels {trained}, the data has {labels}"
    if label_mismatch == "reinit":
        log.warning("%s: starting a new classification head (label_mismatch=reinit)", difference)
        return AutoModelForTokenClassification.from_pretrained(
            name_or_path, num_labels=len(labels), ignore_mismatched_sizes=True, **names
        )
    if label_mismatch == "remap" and sorted(trained) == sorted(labels):
        model = AutoModelForTokenClassification.from_pretrained(name_or_path)
        order = torch.tensor([trained.index(label) for label in labels])
        head = model.classifier
        head.weight.data = head.weight.data[order].clone()
        head.bias.data = head.bias.data[order].clone()
        model.config.update(names)
        return model
    raise ConfigError(
        f"{difference} ({name_or_path}). Pass label_mismatch=remap when they are the same labels in another "
        "order, or label_mismatch=reinit to train a new head for the data's labels."
    )


class Logits(nn.Module):
    """A token classifier as runners see it: input ids and attention mask in, logits out."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model  # named `model`: the ONNX nodes of its layers are /model/... (lit_ner.export_onnx)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


class TokenHead(Head):
    """One label a word: cross-entropy on each word's first sub-token (every sub-token with data.label_all_tokens),
    entities read from the tags by seqeval's default rules (`entity_spans`), each scored by the mean of its words'
    tag probabilities."""

    name = "token"
    backbone = AutoModelForTokenClassification
    replays_validation = True

    def load_backbone(self, name_or_path: str, label_mismatch: str = "error") -> PreTrainedModel:
        return load_token_classifier(name_or_path, self.labels, label_mismatch)

    def loss(self, logits: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        # training reads every sub-token where data.label_all_tokens says so; validation scores first sub-tokens
        target = batch.get("all_labels", batch["labels"]) if self.training else batch["labels"]
        return nn.functional.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=IGNORE)

    def distill_loss(
        self, logits: torch.Tensor, teacher: torch.Tensor, batch: Mapping[str, Any], temperature: float
    ) -> torch.Tensor:
        """KL(teacher || student) of the tag distributions at the positions the loss reads, both logits divided by
        `temperature`; times temperature**2, so its gradients keep their size as the temperature changes."""
        target = batch.get("all_labels", batch["labels"]).flatten()
        read = target != IGNORE
        student = nn.functional.log_softmax(logits.flatten(0, 1)[read].float() / temperature, -1)
        taught = nn.functional.log_softmax(teacher.flatten(0, 1)[read].float() / temperature, -1)
        kl = nn.functional.kl_div(student, taught, log_target=True, reduction="batchmean")
        return kl * temperature**2

    def validate(self, logits: torch.Tensor, batch: Mapping[str, Any], metrics: Sequence[Any]) -> None:
        # argmax on the device: only label ids (and then only counts) ever leave it, never full logits
        predicted = logits.argmax(-1)
        for metric in metrics:
            metric.update(predicted, batch["labels"], batch["continues"])

    def graph(self, model: PreTrainedModel) -> nn.Module:
        return Logits(model)

    # ---- reading a trained model: one row of label scores a word
    def new_reading(self, n_words: int) -> np.ndarray:
        return np.zeros((n_words, len(self.labels)), dtype=np.float32)

    def collect(
        self, outputs: Mapping[str, np.ndarray], rows: Sequence[tuple[int, Row]], readings: list, aggregation: str
    ) -> None:
        """Each scored word's logits (its first sub-token's) or, with another aggregation, its sub-tokens' label
        probabilities reduced to one."""
        logits = outputs[self.outputs[0]]
        if aggregation == "first":
            for n, (sentence, row) in enumerate(rows):
                positions, words = scored_positions(row)
                readings[sentence][words] = logits[n, positions]
            return
        grouped: dict[tuple[int, int], list[np.ndarray]] = {}
        for n, (sentence, row) in enumerate(rows):
            for position, word in enumerate(row.word_ids):
                if word is not None and word in row.scored:
                    grouped.setdefault((sentence, word), []).append(logits[n, position])
        for (sentence, word), scores in grouped.items():
            probabilities = softmax(np.stack(scores))
            if aggregation == "average":
                readings[sentence][word] = probabilities.mean(0)
            else:  # "max": the sub-token that is surest of its label
                readings[sentence][word] = probabilities[int(probabilities.max(-1).argmax())]

    def decode(self, reading: np.ndarray, temperature: float, aggregation: str) -> Decoded:
        """Tags by the arg-max (with "first", of the logits, as training's metric reads them); each entity's score
        the mean of its words' tag probabilities, the logits divided by `temperature` before the softmax."""
        first = aggregation == "first"
        probabilities = softmax(reading / temperature) if first else reading
        best = reading.argmax(-1)
        return self.decoded(best, probabilities, reading if first else None)

    def decoded(self, best: np.ndarray, probabilities: np.ndarray, logits: np.ndarray | None) -> Decoded:
        """The sentence of these word tags (label ids): entities by seqeval's default rules, scored by their words'
        probabilities; `logits`: each word's, the evidence calibration refits (none for averaged readings)."""
        tags = [self.labels[i] for i in best]
        scores = probabilities[np.arange(len(best)), best]
        spans = entity_spans(tags)
        entities = [EntitySpan(t, s, e, float(scores[s:e].mean())) for t, s, e in spans]
        evidence = None if logits is None else [Evidence(logits[s:e], best[s:e]) for _, s, e in spans]
        o_scores = probabilities[:, self.labels.index("O")]
        return Decoded(entities, tags, evidence, word_scores=scores, o_scores=o_scores)
