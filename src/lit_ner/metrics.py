"""Entity-level NER precision, recall and F1 as one torchmetrics Metric, equal to seqeval's, decoded on tensors."""

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from lit_ner.data.align import IGNORE  # pure Python (the data package loads its DataModule lazily)

# Prefix of a label (its first character, as seqeval reads it) as a bit flag, so that testing a tag
# against a set of prefixes is one bitwise and.
O, B, I, E, S = 1, 2, 4, 8, 16
_PREFIX_FLAG = {"O": O, "B": B, "I": I, "E": E, "S": S}
MODES = ("default", "strict")


def split_label(label: str) -> tuple[int, str]:
    """Return (prefix flag, entity type) of a label: "B-creative-work" -> (B, "creative-work"), "O" -> (O, "")."""
    if label == "O":
        return O, ""
    if label[:1] not in ("B", "I", "E", "S") or label[1:2] not in ("", "-"):
        # seqeval would read "PER" as prefix "P", type "ER" and only warn; refuse instead.
        raise ValueError(f"label {label!r} is not O or B-, I-, E-, S- followed by a type; convert plain tags to IOB2")
    return _PREFIX_FLAG[label[0]], label[2:] or "_"  # seqeval names the type of a bare "B" "_"


def _in(tag: Tensor, *prefixes: int) -> Tensor:
    """Mask of the positions whose prefix flag is one of `prefixes`."""
    return (tag & sum(prefixes)) != 0


def decode_entities(
    label_ids: Tensor,
    sentence_start: Tensor,
    prefix_of_label: Tensor,
    type_of_label: Tensor,
    mode: str = "default",
) -> tuple[Tensor, Tensor, Tensor]:
    """Find the entities in a flat sequence of word labels, as seqeval does, without a Python loop.

    `label_ids` (N,) holds the words of consecutive sentences; `sentence_start` (N,) is True at the first
    word of each sentence and must be True at position 0. `prefix_of_label` and `type_of_label` map a
    label id to its prefix flag and type id. Returns the first word, last word (inclusive) and type id
    of each entity, in order. `mode="default"` chunks like seqeval's default (conlleval) rules;
    `mode="strict"` like seqeval's strict mode: with IOB2 labels an entity is B-X I-X*, with IOBES
    labels (any E- or S-) B-X I-X* E-X or S-X, and a stray I- is no entity.
    """
    # index_select rather than lut[ids]: the same gather, several times faster on CPU.
    tag, typ = prefix_of_label.index_select(0, label_ids), type_of_label.index_select(0, label_ids)
    # seqeval puts an O between sentences, so the word before a sentence start reads as O. The types
    # are left unmasked: next to an O, neither mode's outcome depends on them.
    prev_tag = torch.roll(tag, 1).masked_fill(sentence_start, O)
    prev_typ = torch.roll(typ, 1)
    if mode == "default":
        # The wrap-around makes the last word end a sentence too, since sentence_start[0] is True.
        sentence_end = torch.roll(sentence_start, -1)
        next_tag = torch.roll(tag, -1).masked_fill(sentence_end, O)
        next_typ = torch.roll(typ, -1)
        inside = tag != O
        # seqeval's start_of_chunk: B or S, anything after O/E/S, or a type change. An I or E after
        # O starts a chunk (IOB1 style), it is not dropped.
        start = inside & (_in(tag, B, S) | _in(prev_tag, O, E, S) | (prev_typ != typ))
        # seqeval's end_of_chunk, read one word ahead: E or S end a chunk; so does a following B, S, O
        # or a type change. Every chunk start opens exactly one chunk and every end closes it, so
        # the i-th start pairs with the i-th end.
        end = inside & (_in(tag, E, S) | _in(next_tag, B, S, O) | (next_typ != typ))
        starts, ends = start.nonzero().squeeze(1), end.nonzero().squeeze(1)
    elif mode == "strict":
        # seqeval's strict mode, scheme IOB2, or IOBES where the labels have E- or S-. An I-X or E-X
        # continues a B-X or I-X just before it; every other word heads a segment (cumsum numbers
        # them). B and S never continue anything, so each heads a segment and its entity ends where
        # that segment does. IOBES also wants the segment closed by E or S: B-X I-X alone is no entity.
        link = _in(tag, I, E) & _in(prev_tag, B, I) & (prev_typ == typ)
        segment = torch.cumsum(~link, 0) - 1
        last_of_segment = torch.roll(~link, -1).nonzero().squeeze(1)  # the word before the next head
        starts = _in(tag, B, S).nonzero().squeeze(1)
        ends = last_of_segment.index_select(0, segment.index_select(0, starts))
        if _in(prefix_of_label, E, S).any():
            closed = _in(tag.index_select(0, ends), E, S)
            starts, ends = starts[closed], ends[closed]
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return starts, ends, typ.index_select(0, starts)


class EntityMetric(Metric):
    """Micro and per-type entity precision, recall, F1 and support, equal to seqeval's classification_report.

    `mode="default"` equals seqeval's default (conlleval) scores; `mode="strict"` equals seqeval's
    `mode="strict"` with `scheme=IOB2`, or `scheme=IOBES` where `labels` has E- or S- labels.
    Keeps only counts per entity type, summed across processes, so distributed results equal
    single-process ones. A zero division gives 0.0, as seqeval's default does.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, labels: Sequence[str], mode: str = "default", **kwargs) -> None:
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        prefixes, types = zip(*map(split_label, labels)) if labels else ((), ())
        self.mode = mode
        self.entity_types = sorted({t for p, t in zip(prefixes, types) if p != O})
        type_id = {t: i for i, t in enumerate(self.entity_types)}
        n_types = len(self.entity_types)
        # uint8 flags: the decoding streams them several times, and bytes stream faster than int64.
        self.register_buffer("prefix_of_label", torch.tensor(prefixes, dtype=torch.uint8), persistent=False)
        # O gets a type id of its own; the decoding never compares it (see decode_entities).
        self.register_buffer(
            "type_of_label", torch.tensor([type_id.get(t, n_types) for t in types], dtype=torch.long), persistent=False
        )
        for name in ("tp", "predicted", "gold"):
            self.add_state(name, torch.zeros(n_types, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, continues: Tensor | None = None, entities: bool = False) -> None:
        """Count entities in a batch of label ids (batch, seq_len); positions where target is IGNORE are skipped.

        The remaining positions of a row are the words of one sentence, unless `continues` (batch,) is
        True for the row: then it goes on with the sentence of the row before it (a window of a long
        sentence). A sentence cannot continue across calls: the first row of each call starts one.

        With `entities`, `preds` and `target` are the entities themselves, rows of (sentence, start word, end word,
        type id), the type ids indexing `entity_types`: what a head that decodes spans itself gives, nested or not.
        """
        if entities:
            return self._update_entities(preds, target)
        if preds.shape != target.shape:
            raise ValueError(f"preds and target differ in shape: {tuple(preds.shape)} and {tuple(target.shape)}")
        # Flat indices of the kept positions, in reading order: a 1-D nonzero and index_select are
        # several times faster than a 2-D nonzero or boolean-mask indexing of a (batch, seq_len) tensor.
        kept = (target.flatten() != IGNORE).nonzero().squeeze(1)
        if kept.numel() == 0:
            return
        rows = kept.div(target.shape[1], rounding_mode="floor")
        sentence_start = torch.ones_like(rows, dtype=torch.bool)
        sentence_start[1:] = rows[1:] != rows[:-1]
        if continues is not None:
            sentence_start[1:] &= ~continues.to(torch.bool)[rows[1:]]
        n_words, n_types = rows.numel(), len(self.entity_types)

        def entity_keys(label_ids: Tensor) -> tuple[Tensor, Tensor]:
            starts, ends, types = decode_entities(
                label_ids, sentence_start, self.prefix_of_label, self.type_of_label, self.mode
            )
            # One int64 per entity: (start, end, type) in mixed radix, so matching is a set lookup.
            return (starts * n_words + ends) * n_types + types, types

        # no two entities of one decoding share a start, so the keys of each side are unique
        self._count(*entity_keys(preds.flatten().index_select(0, kept)), *entity_keys(target.flatten().index_select(0, kept)))

    def _update_entities(self, predicted: Tensor, gold: Tensor) -> None:
        """Count entities given as rows (sentence, start word, end word, type id); a row counts once."""
        predicted, gold = (torch.unique(x.reshape(-1, 4).long(), dim=0) for x in (predicted, gold))
        scale = int(torch.cat([predicted[:, :3].flatten(), gold[:, :3].flatten(), predicted.new_zeros(1)]).max()) + 1
        n_types = len(self.entity_types)

        def keys(rows: Tensor) -> tuple[Tensor, Tensor]:  # one int64 per entity, in mixed radix
            return ((rows[:, 0] * scale + rows[:, 1]) * scale + rows[:, 2]) * n_types + rows[:, 3], rows[:, 3]

        self._count(*keys(predicted.to(self.tp.device)), *keys(gold.to(self.tp.device)))

    def _count(self, pred_keys: Tensor, pred_types: Tensor, gold_keys: Tensor, gold_types: Tensor) -> None:
        n_types = len(self.entity_types)
        hit = torch.isin(pred_keys, gold_keys, assume_unique=True)
        self.tp += torch.bincount(pred_types[hit], minlength=n_types)
        self.predicted += torch.bincount(pred_types, minlength=n_types)
        self.gold += torch.bincount(gold_types, minlength=n_types)

    def compute(self) -> dict[str, Tensor]:
        """Return "precision", "recall", "f1" (micro) and "precision_T", "recall_T", "f1_T", "support_T" per type T."""
        # float64 reproduces seqeval's numpy ratios bit for bit; MPS has no float64.
        dtype = torch.float32 if self.tp.device.type == "mps" else torch.float64
        tp, predicted, gold = (x.to(dtype) for x in (self.tp, self.predicted, self.gold))
        scores = dict(zip(("precision", "recall", "f1"), _prf(tp.sum(), predicted.sum(), gold.sum())))
        precision, recall, f1 = _prf(tp, predicted, gold)
        for i, name in enumerate(self.entity_types):
            scores |= {
                f"precision_{name}": precision[i],
                f"recall_{name}": recall[i],
                f"f1_{name}": f1[i],
                f"support_{name}": gold[i],
            }
        return scores


def _prf(tp: Tensor, predicted: Tensor, gold: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Precision, recall and F1 with 0.0 for 0/0, in seqeval's order of operations (so equal to the last bit)."""
    precision = tp / predicted.where(predicted > 0, 1)
    recall = tp / gold.where(gold > 0, 1)
    total = precision + recall
    return precision, recall, 2 * precision * recall / total.where(total > 0, 1)
