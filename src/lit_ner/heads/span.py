"""The span head, for nested and overlapping entities: every span of up to `max_width` words gets a score for each
entity type and for "no entity", from its first word's first sub-token, its last word's last sub-token and its width. Decoding keeps the
spans whose best class is a type: all of them that do not cross one another when the data nests entities
(`nested`), else the highest scores first that do not overlap. Its export is the encoder as a transformers folder
plus `head.safetensors`; it does not load in `transformers.pipeline`."""

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, PretrainedConfig, PreTrainedModel

from lit_ner.data.align import IGNORE
from lit_ner.data.batching import padded
from lit_ner.data.encode import Row
from lit_ner.data.schemes import nested_count
from lit_ner.errors import ConfigError
from lit_ner.heads.base import (
    Decoded, EntitySpan, Evidence, Head, TrainSentences, flat_tags, last_positions, scored_positions, segments, softmax,
)
from lit_ner.locations import local_or_hub

log = logging.getLogger(__name__)
WEIGHTS = "head.safetensors"


def spans_of(n_words: int, max_width: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) word indices, end exclusive, of every span of `n_words` words up to `max_width` words long: by
    start, then by width. Training and every reader enumerate spans with this one function."""
    first, last = np.triu_indices(n_words)
    kept = last - first < max_width
    return first[kept], last[kept] + 1


class SpanGraph(nn.Module):
    """The span head as runners see it: ids, mask and the spans' token positions and widths in, span logits out."""

    def __init__(self, model: PreTrainedModel, head: "SpanHead") -> None:
        super().__init__()
        self.model, self.head = model, head

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, span_starts: torch.Tensor, span_ends: torch.Tensor,
        span_widths: torch.Tensor,
    ) -> torch.Tensor:  # fmt: skip
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head.span_logits(hidden, span_starts, span_ends, span_widths)


class SpanHead(Head):
    """Span classification over the encoder's hidden states. Options: `max_width` (words; null: the training data's
    longest entity), `nested` (null: whether any training entity sits inside another), `hidden_size` and `dropout`
    of its classifier, and `lr_scale`: the classifier learns at model.lr times it (new, randomly initialised layers
    on a pretrained encoder; at the encoder's rate they barely move in an epoch: docs/quality.md), and `negatives`:
    null trains on every no-entity span; a number draws that many a word, each step, from each sentence's (more
    recall, less precision: for data whose annotators leave entities unlabelled, as GENIA's inside longer ones)."""

    name = "span"
    inputs = ("input_ids", "attention_mask", "span_starts", "span_ends", "span_widths")
    outputs = ("span_logits",)
    backbone = AutoModel

    def __init__(
        self,
        labels: Sequence[str],
        max_width: int | None = None,
        nested: bool | None = None,
        hidden_size: int = 150,
        dropout: float = 0.1,
        lr_scale: float = 100.0,
        negatives: float | None = None,
    ) -> None:
        super().__init__(labels)
        if max_width is not None and max_width < 1:
            raise ConfigError(f"model.head.max_width={max_width}: the widest span in words, 1 or more (null: the data's)")
        self.max_width, self.nested = max_width, nested
        self.hidden_size, self.dropout, self.lr_scale = hidden_size, dropout, lr_scale
        if negatives is not None and negatives <= 0:
            raise ConfigError(f"model.head.negatives={negatives}: no-entity spans drawn a word, above 0 (null: all)")
        self.negatives = negatives

    @classmethod
    def configure(cls, options: dict[str, Any], train: Callable[[], TrainSentences]) -> dict[str, Any]:
        """`max_width` and `nested` from the training sentences where they are null; a `max_width` narrower than some
        entities is said, with the entities it cannot reach."""
        options, train = dict(options), train()
        widths = [end - start for _, entities in train for _, start, end in entities]
        longest = max(widths, default=1)
        if options.get("max_width") is None:
            options["max_width"] = longest
            log.info("span head: max_width=%d words, the training data's longest entity", longest)
        elif options["max_width"] < longest:
            out = [(words, e) for words, entities in train for e in entities if e[2] - e[1] > options["max_width"]]
            shown = "; ".join(f"{' '.join(words[s:e])!r} ({t}, {e - s} words)" for words, (t, s, e) in out[:5])
            log.warning(
                "model.head.max_width=%d: %d of %d training entities are wider and can never be predicted, e.g. %s. "
                "Raise model.head.max_width (null: the longest, %d words) to reach them.",
                options["max_width"], len(out), len(widths), shown, longest,
            )  # fmt: skip
        if options.get("nested") is None:
            inside = sum(nested_count(entities) for _, entities in train)
            options["nested"] = inside > 0
            log.info("span head: nested=%s (%d training entities sit inside another)", options["nested"], inside)
        return options

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "max_width": self.max_width, "nested": self.nested, "hidden_size": self.hidden_size,
                "dropout": self.dropout, "lr_scale": self.lr_scale, "negatives": self.negatives}  # fmt: skip

    # ---- the classifier
    def attach(self, config: PretrainedConfig) -> None:
        if self.max_width is None or self.nested is None:
            raise ConfigError("the span head needs max_width and nested: lit_ner.train fills them from the data")
        width = config.hidden_size
        # [start; end; width] -> hidden, written as three projections summed: the hidden states are projected once
        # a token, then gathered a span (the same as one Linear over the concatenation, with far less memory)
        self.drop = nn.Dropout(self.dropout)
        self.start = nn.Linear(width, self.hidden_size)
        self.end = nn.Linear(width, self.hidden_size, bias=False)
        self.width = nn.Embedding(self.max_width + 1, self.hidden_size, padding_idx=0)  # 0: a padding span
        self.classify = nn.Sequential(nn.GELU(), nn.Dropout(self.dropout), nn.Linear(self.hidden_size, len(self.types) + 1))

    def span_logits(
        self, hidden: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor, widths: torch.Tensor
    ) -> torch.Tensor:
        """(rows, spans, types + 1) scores, class 0 "no entity", of the spans whose first word's first sub-token sits
        at `starts`, whose last word's last sub-token at `ends` (rows, spans), and which are `widths` words wide."""
        hidden = self.drop(hidden)
        at_start = self.start(hidden).gather(1, starts[..., None].expand(-1, -1, self.hidden_size))
        at_end = self.end(hidden).gather(1, ends[..., None].expand(-1, -1, self.hidden_size))
        return self.classify(at_start + at_end + self.width(widths))

    # ---- training
    def load_backbone(self, name_or_path: str, label_mismatch: str = "error") -> PreTrainedModel:
        source = local_or_hub(name_or_path, "model.model_name_or_path")
        model = AutoModel.from_pretrained(source)
        self.attach(model.config)
        return model

    def features(self, model: PreTrainedModel, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if "position_ids" in batch:
            return model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).last_hidden_state
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state

    def _batch_spans(self, hidden: torch.Tensor, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, list]:
        """The logits and gold classes (IGNORE for padding) of every span of the batch's sentences (or windows), and
        for each sequence its (spans' starts, ends, gold entities as (start, end, class)) in its own words."""
        width = batch["labels"].shape[1]
        per_row: dict[int, tuple[list, list, list, list]] = {}
        sequences = []
        b_to_class = {self.labels.index(f"B-{t}"): k + 1 for k, t in enumerate(self.types)}
        for row, positions in segments(batch):
            starts, ends = spans_of(len(positions), self.max_width)
            last = positions + np.asarray(batch["pieces"][row], dtype=np.int64) - 1  # each word's last sub-token
            gold = [(s, e, b_to_class[b]) for s, e, b in batch["spans"][row]]
            target = {(s, e): c for s, e, c in gold if e - s <= self.max_width}
            packed_row = int(positions[0] // width) if len(positions) else 0
            cells = per_row.setdefault(packed_row, ([], [], [], []))
            cells[0].extend((positions[starts] % width).tolist())
            cells[1].extend((last[ends - 1] % width).tolist())
            cells[2].extend((ends - starts).tolist())
            cells[3].extend(target.get((s, e), 0) for s, e in zip(starts.tolist(), ends.tolist()))
            sequences.append((packed_row, len(cells[0]) - len(starts), starts, ends, gold))
        rows = range(len(batch["labels"]))
        columns = [[per_row.get(r, ([], [], [], []))[k] for r in rows] for k in range(4)]
        device, most = hidden.device, max(1, max(map(len, columns[0])))
        starts, ends, widths = (padded(c, 0, most).to(device) for c in columns[:3])
        logits = self.span_logits(hidden, starts, ends, widths)
        return logits, padded(columns[3], IGNORE, most).to(device), sequences

    def loss(self, hidden: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        """Cross-entropy over every span, "no entity" included, summed and divided by the batch's words: a word has
        up to max_width spans, nearly all of them no entity, and a mean over spans would shrink an entity's pull by
        as much; a word's share keeps the scale of the token head's loss (a mean a word)."""
        logits, target, sequences = self._batch_spans(hidden, batch)
        if self.negatives is not None and self.training:
            target = self._sampled(target, sequences)
        total = nn.functional.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=IGNORE,
                                            reduction="sum")  # fmt: skip
        return total / batch["words"].sum().clamp(min=1)

    def _sampled(self, target: torch.Tensor, sequences: list) -> torch.Tensor:
        """`target` with all but ceil(negatives x words) of each sentence's no-entity spans, drawn anew each step,
        ignored (Li et al. 2021): an entity the annotators left unlabelled is then seldom taught as "no entity"."""
        target = target.clone()
        for row, first, starts, ends, _ in sequences:
            cells = target[row, first : first + len(starts)]
            negative = (cells == 0).nonzero().squeeze(1)
            keep = math.ceil(self.negatives * (int(ends.max()) if len(ends) else 0))
            if len(negative) > keep:
                cells[negative[torch.randperm(len(negative), device=negative.device)[keep:]]] = IGNORE
        return target

    def validate(self, hidden: torch.Tensor, batch: Mapping[str, Any], metrics: Sequence[Any]) -> None:
        """Each sequence's spans decoded as readers decode them, its gold entities all counted (those wider than
        max_width too: missed)."""
        logits, _, sequences = self._batch_spans(hidden, batch)
        logits = logits.detach().float().cpu().numpy()
        predicted, gold = [], []
        for k, (row, first, starts, ends, entities) in enumerate(sequences):
            chosen = self.choose(starts, ends, logits[row, first : first + len(starts)], 1.0)
            predicted += [(k, s, e, c - 1) for c, s, e, _, _ in chosen]
            gold += [(k, s, e, c - 1) for s, e, c in entities]
        for metric in metrics:
            metric.update(torch.tensor(predicted).reshape(-1, 4), torch.tensor(gold).reshape(-1, 4), entities=True)

    # ---- decoding
    def choose(
        self, starts: np.ndarray, ends: np.ndarray, logits: np.ndarray, temperature: float
    ) -> list[tuple[int, int, int, float, int]]:
        """The spans kept as entities, as (class, start, end, score, index into the spans): those whose best class
        is a type, the most probable first; with `nested`, each that crosses no span kept before it (inside or
        around one is fine), else each that overlaps none. Which spans are kept is decided at the model's own scale
        (temperature 1), so calibration changes their scores, never which entities a model finds: a temperature
        reorders spans whose probabilities are spread over different numbers of classes."""
        logits = logits.astype(np.float64)
        own = softmax(logits)
        best = own.argmax(-1)
        found = np.flatnonzero(best > 0)
        order = found[np.argsort(-own[found, best[found]], kind="stable")]
        probabilities = softmax(logits / temperature)
        kept: list[tuple[int, int, int, float, int]] = []
        for k in order.tolist():
            s, e = int(starts[k]), int(ends[k])
            if not any(self._clash(s, e, a, b) for _, a, b, _, _ in kept):
                kept.append((int(best[k]), s, e, float(probabilities[k, best[k]]), k))
        return sorted(kept, key=lambda x: (x[1], -x[2]))

    def _clash(self, s: int, e: int, a: int, b: int) -> bool:
        """Whether span [s, e) may not stand beside [a, b): overlapping, unless nested decoding and one holds the other."""
        overlap = a < e and s < b
        return overlap and not (self.nested and ((a <= s and e <= b) or (s <= a and b <= e)))

    def graph(self, model: PreTrainedModel) -> nn.Module:
        return SpanGraph(model, self)

    def _row_spans(self, row: Row) -> tuple[list[int], list[int], np.ndarray, np.ndarray]:
        """The row's scored words (each one's first sub-token, and its sentence word) and its spans, in those words."""
        positions, words = scored_positions(row)
        starts, ends = spans_of(len(positions), self.max_width)
        return positions, words, starts, ends

    def batch_inputs(self, rows: Sequence[Row], pad_id: int) -> dict[str, torch.Tensor]:
        inputs = super().batch_inputs(rows, pad_id)
        columns: list[list[list[int]]] = [[], [], []]
        for row in rows:
            positions, _, starts, ends = self._row_spans(row)
            columns[0].append(np.asarray(positions, dtype=np.int64)[starts].tolist())
            columns[1].append(np.asarray(last_positions(row), dtype=np.int64)[ends - 1].tolist())
            columns[2].append((ends - starts).tolist())
        width = max(1, max(map(len, columns[0])))  # a row without words still gives the graph one (padding) span
        return inputs | dict(zip(self.inputs[2:], (padded(c, 0, width) for c in columns)))

    def new_reading(self, n_words: int) -> dict[str, Any]:
        return {"words": n_words, "spans": []}

    def collect(
        self, outputs: Mapping[str, np.ndarray], rows: Sequence[tuple[int, Row]], readings: list, aggregation: str
    ) -> None:
        """Each row's spans, in sentence words, with their logits (a window's spans lie inside its scored words)."""
        logits = outputs[self.outputs[0]]
        for n, (sentence, row) in enumerate(rows):
            _, words, starts, ends = self._row_spans(row)
            at = np.asarray(words, dtype=np.int64)
            for k, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
                readings[sentence]["spans"].append((int(at[s]), int(at[e - 1]) + 1, logits[n, k]))

    def decode(self, reading: dict[str, Any], temperature: float, aggregation: str) -> Decoded:
        spans = reading["spans"]
        if not spans:
            return Decoded([], ["O"] * reading["words"], [])
        starts, ends = np.array([s for s, _, _ in spans]), np.array([e for _, e, _ in spans])
        logits = np.stack([x for _, _, x in spans]).astype(np.float32)
        chosen = self.choose(starts, ends, logits, temperature)
        entities = [EntitySpan(self.types[c - 1], s, e, score) for c, s, e, score, _ in chosen]
        evidence = [Evidence(logits[k][None], np.array([c])) for c, _, _, _, k in chosen]
        least_sure = float(softmax(logits.astype(np.float64) / temperature).max(-1).min())
        return Decoded(entities, flat_tags(reading["words"], entities), evidence, least_sure=least_sure)

    # ---- the export
    def save(self, folder: Path) -> None:
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(Path(folder) / WEIGHTS))

    def load(self, folder: Path) -> None:
        file = Path(folder) / WEIGHTS
        if not file.is_file():
            raise ConfigError(f"model={folder}: no {WEIGHTS} there, which a span head's export holds; export it again")
        self.load_state_dict(load_file(str(file)))
