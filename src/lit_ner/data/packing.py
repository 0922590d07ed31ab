"""Training batches without padding: a batch's sentences share rows, each attending only to itself.

A batch is the recipe's batch (the same sentences, the same loss: a mean over the same labelled tokens); only its
layout changes. Sentences are laid into rows as wide as the batch's longest (first fit, longest first), and each
token's position restarts at 0 with its sentence. transformers builds the attention mask from those positions
(`masking_utils.find_packed_sequence_indices`: a new sequence starts wherever the position does not go up by one),
so a sentence sees only its own tokens and gives the logits it gives alone. Whether an encoder does that is
checked on the model itself (`packs_exactly`); one that does not is trained on padded batches.
"""

import logging
from collections.abc import Sequence
from typing import Any

import torch

from lit_ner.data.align import IGNORE

log = logging.getLogger(__name__)


def first_fit(lengths: Sequence[int], width: int) -> list[list[int]]:
    """Rows of at most `width` tokens, each a list of indices into `lengths`: longest first, each into the first
    row it fits (first-fit decreasing: within 22 % of the fewest rows possible, here most often the fewest)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        fits = next((r for r, free in enumerate(room) if free >= lengths[index]), None)
        if fits is None:
            rows.append([index])
            room.append(width - lengths[index])
        else:
            rows[fits].append(index)
            room[fits] -= lengths[index]
    return rows


def pack_batch(rows: list[dict[str, Any]], pad_id: int, label_keys: Sequence[str]) -> dict[str, torch.Tensor]:
    """One training batch of encoded rows (input_ids and `label_keys`), packed: input_ids, position_ids and the
    labels, [packed rows, longest sentence]; a row's unused tail is a padding block of its own, labelled IGNORE.
    `sentence` lists the batch's sentences (its size, for logging); `order`, the rows in the order they are laid out
    (row by row, left to right)."""
    lengths = [len(r["input_ids"]) for r in rows]
    width = max(lengths)
    layout = first_fit(lengths, width)
    batch = {
        "input_ids": torch.full((len(layout), width), pad_id, dtype=torch.long),
        "position_ids": torch.zeros((len(layout), width), dtype=torch.long),
        **{key: torch.full((len(layout), width), IGNORE, dtype=torch.long) for key in label_keys},
        "sentence": torch.tensor([r["sentence"] for r in rows]),
        "order": torch.tensor([index for members in layout for index in members]),
    }
    for i, members in enumerate(layout):
        start = 0
        for index in members:
            n = lengths[index]
            batch["input_ids"][i, start : start + n] = torch.tensor(rows[index]["input_ids"])
            batch["position_ids"][i, start : start + n] = torch.arange(n)
            for key in label_keys:
                batch[key][i, start : start + n] = torch.tensor(rows[index][key])
            start += n
        batch["position_ids"][i, start:] = torch.arange(width - start)
    return batch


@torch.no_grad()
def packs_exactly(model: torch.nn.Module, vocab_size: int, tolerance: float = 1e-4) -> bool:
    """Whether `model` reads two sentences packed into one row (position_ids restarting, no attention mask) as it
    reads each alone: the same logits within `tolerance`. Checked once a run, in eval mode, on token ids drawn from
    a fixed generator."""
    # ordinary tokens: ids from the upper half of the vocabulary, where no tokenizer keeps its special tokens
    ids = torch.randint(vocab_size // 2, vocab_size, (9,), generator=torch.Generator().manual_seed(0)).tolist()
    first, second = ids[:5], ids[5:]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        # the first output: a token classifier's logits, an encoder's hidden states
        alone = [model(input_ids=torch.tensor([s], device=device))[0][0] for s in (first, second)]
        packed = model(
            input_ids=torch.tensor([first + second + [0]], device=device),
            position_ids=torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 0]], device=device),
        )[0][0]
    except (TypeError, ValueError, RuntimeError) as error:  # an encoder that takes no position_ids
        log.debug("packing check: %s", error)
        return False
    finally:
        model.train(was_training)
    return bool(
        torch.allclose(packed[:5], alone[0], atol=tolerance) and torch.allclose(packed[5:9], alone[1], atol=tolerance)
    )
