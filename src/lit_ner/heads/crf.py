"""The CRF head (flair's `use_crf`): a linear-chain CRF over the token head's scores of each word, decoded by Viterbi
restricted to the transitions the tag scheme allows, so it never emits an invalid sequence. lit_ner's own short
implementation rather than pytorch-crf: the scheme's constraints are a mask on its transitions (pytorch-crf has no
constrained decoding), decoding runs in NumPy on any backend's scores (ONNX included), and the learned transitions
travel in the export's config.json. An entity's score is the mean of its words' tag probabilities, softmax of the
scores at the Viterbi tags (not CRF marginals): the scale calibration fits a temperature to, as the token head's."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from lit_ner.data.schemes import allowed, split_tag
from lit_ner.heads.base import Decoded, segments, softmax
from lit_ner.heads.token import TokenHead

FORBIDDEN = -1e4  # added to the score of a transition the scheme forbids: no path through one can win


def viterbi(emissions: np.ndarray, transitions: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The best label sequence of (words, labels) `emissions`: label ids, one a word."""
    if not len(emissions):
        return np.zeros(0, dtype=np.int64)
    score = start + emissions[0]
    back = []
    for step in emissions[1:]:
        total = score[:, None] + transitions + step[None, :]  # [previous, next]
        back.append(total.argmax(0))
        score = total.max(0)
    best = [int((score + end).argmax())]
    for pointers in reversed(back):
        best.append(int(pointers[best[-1]]))
    return np.array(best[::-1], dtype=np.int64)


class CrfHead(TokenHead):
    """The token head's scores as a CRF's emissions: trained by the sequence's negative log-likelihood over the
    first sub-tokens of each sentence's (or window's) words, decoded by constrained Viterbi."""

    name = "crf"

    def __init__(
        self,
        labels: Sequence[str],
        transitions: list[list[float]] | None = None,
        start: list[float] | None = None,
        end: list[float] | None = None,
    ) -> None:
        super().__init__(labels)
        n = len(self.labels)
        self.scheme = "IOBES" if any(split_tag(label)[0] in ("E", "S") for label in self.labels) else "IOB2"
        # learned scores of label -> label, of starting and of ending on a label; the export records them
        self.transitions = nn.Parameter(torch.tensor(transitions) if transitions else torch.zeros(n, n))
        self.start = nn.Parameter(torch.tensor(start) if start else torch.zeros(n))
        self.end = nn.Parameter(torch.tensor(end) if end else torch.zeros(n))
        ok = torch.tensor([[allowed(a, b, self.scheme) for b in self.labels] for a in self.labels])
        self.register_buffer("forbidden", torch.where(ok, 0.0, FORBIDDEN), persistent=False)
        starts = torch.tensor([allowed("O", label, self.scheme) for label in self.labels])
        self.register_buffer("forbidden_start", torch.where(starts, 0.0, FORBIDDEN), persistent=False)
        ends = torch.tensor([allowed(label, "O", self.scheme) for label in self.labels])
        self.register_buffer("forbidden_end", torch.where(ends, 0.0, FORBIDDEN), persistent=False)

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "transitions": self.transitions.tolist(), "start": self.start.tolist(),
                "end": self.end.tolist()}  # fmt: skip

    def _sequences(
        self, emissions: torch.Tensor, batch: Mapping[str, Any]
    ) -> tuple[list[np.ndarray], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch's sentences (or windows) as CRF sequences: each one's flat word positions, (sequences, words,
        labels) emissions, the gold label ids, the word mask, and whether each starts a sentence (a later window of
        a long sentence may open inside an entity)."""
        found = segments(batch)
        positions = [p for _, p in found]
        width = max(1, max(map(len, positions), default=1))
        index = torch.zeros((len(found), width), dtype=torch.long)
        mask = torch.zeros((len(found), width), dtype=torch.bool)
        for k, p in enumerate(positions):
            index[k, : len(p)] = torch.from_numpy(p)
            mask[k, : len(p)] = True
        device = emissions.device
        index, mask = index.to(device), mask.to(device)
        scores = emissions.float().flatten(0, 1)[index]
        gold = batch["labels"].flatten()[index].masked_fill(~mask, 0)
        rows = torch.tensor([row for row, _ in found], dtype=torch.long, device=device)
        opens = ~batch["continues"].to(device=device, dtype=torch.bool)[rows]
        return positions, scores, gold, mask, opens

    def loss(self, emissions: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        """The negative log-likelihood of the gold tags, summed over sequences, divided by the words: a mean a word,
        like the token head's cross-entropy. No path goes through a transition the scheme forbids; a window that
        continues a sentence may start on any label, and no sequence is held to the end rules (a window may stop
        inside an entity; gold tags are valid anyway)."""
        _, scores, tags, mask, opens = self._sequences(emissions, batch)
        transitions = self.transitions + self.forbidden
        start = self.start + torch.where(opens[:, None], self.forbidden_start, 0.0)
        sequences = torch.arange(len(tags), device=scores.device)
        gold = start[sequences, tags[:, 0]] + scores[sequences, 0, tags[:, 0]]
        alpha = start + scores[:, 0]  # log-sum of every path's score up to the word, by its label
        for t in range(1, scores.shape[1]):
            step = transitions[tags[:, t - 1], tags[:, t]] + scores[sequences, t, tags[:, t]]
            gold = gold + step * mask[:, t]
            following = torch.logsumexp(alpha[:, :, None] + transitions[None] + scores[:, t, None, :], dim=1)
            alpha = torch.where(mask[:, t, None], following, alpha)
        last = tags[sequences, mask.sum(1) - 1]
        nll = torch.logsumexp(alpha + self.end, dim=1) - (gold + self.end[last])
        return nll.sum() / mask.sum().clamp(min=1)

    def validate(self, emissions: torch.Tensor, batch: Mapping[str, Any], metrics: Sequence[Any]) -> None:
        """Each sequence decoded by Viterbi under the rules `loss` trains with, its tags scored as the token head's."""
        positions, scores, _, _, opens = self._sequences(emissions, batch)
        transitions, start, _ = self._decoding()
        free_start, end = (x.detach().float().cpu().numpy() for x in (self.start, self.end))
        predicted = torch.zeros(batch["labels"].numel(), dtype=torch.long)
        scores = scores.detach().cpu().numpy()
        for k, p in enumerate(positions):
            path = viterbi(scores[k, : len(p)], transitions, start if bool(opens[k]) else free_start, end)
            predicted[torch.from_numpy(p)] = torch.from_numpy(path)
        predicted = predicted.view_as(batch["labels"]).to(batch["labels"].device)
        for metric in metrics:
            metric.update(predicted, batch["labels"], batch["continues"])

    def _decoding(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The transition, start and end scores with the scheme's rules, for Viterbi."""
        pairs = ((self.transitions, self.forbidden), (self.start, self.forbidden_start), (self.end, self.forbidden_end))
        return tuple((value + forbidden).detach().float().cpu().numpy() for value, forbidden in pairs)

    def decode(self, reading: np.ndarray, temperature: float, aggregation: str) -> Decoded:
        """Viterbi over the sentence's words (its windows joined), with every rule of the scheme; the scores of
        its tags as the token head's (softmax of the word scores divided by `temperature`)."""
        best = viterbi(reading, *self._decoding())
        return self.decoded(best, softmax(reading / temperature), reading)
