"""Batches with little padding: shuffled batches of length-sorted buckets for training, length order for evaluation.

Both samplers shard batches across processes themselves (rank r takes batches r, r+W, ...), so the
trainer runs with `use_distributed_sampler=False`: evaluation then sees every sentence exactly once
(no padding duplicates that would skew entity counts) and training ranks get equal batch counts.
"""

from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import Sampler


def padded(rows: Sequence[Sequence[int]], value: int, width: int | None = None) -> torch.Tensor:
    """Rows of ids as one (rows, width) tensor, each right-padded with `value` (width: the longest row's unless given),
    as every batch lit_ner reads is laid out: training's, evaluation's and every reader's of a trained model."""
    out = torch.full((len(rows), max(map(len, rows), default=0) if width is None else width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


def attention_mask(rows: Sequence[Sequence[int]], width: int | None = None) -> torch.Tensor:
    """1 on each row's own tokens, 0 on its padding."""
    return padded([[1] * len(row) for row in rows], 0, width)


def pack(order: Sequence[int], lengths: Sequence[int], batch_size: int, max_tokens: int | None) -> list[list[int]]:
    """Cut `order` into consecutive batches of at most `batch_size` rows and, with `max_tokens`, at most that
    many tokens after padding (rows x longest row), so one batch of long sentences cannot run out of memory."""
    batches: list[list[int]] = []
    batch: list[int] = []
    longest = 0
    for index in order:
        grown = max(longest, lengths[index])
        too_many = len(batch) >= batch_size or (max_tokens is not None and grown * (len(batch) + 1) > max_tokens)
        if batch and too_many:
            batches.append(batch)
            batch, grown = [], lengths[index]
        batch.append(index)
        longest = grown
    if batch:
        batches.append(batch)
    return batches


class SeededPermutation(Sampler[int]):
    """A random order that depends on (seed, epoch) only, so a resumed run sees exactly the batches an
    uninterrupted run would. The epoch is read when iteration starts, from `epoch_of` (the trainer's
    `current_epoch`): the counter Lightning passes to `set_epoch` lags by one after a resume at an epoch end."""

    def __init__(self, size: int, seed: int = 0, epoch_of: Callable[[], int] = lambda: 0) -> None:
        self.size, self.seed, self.epoch_of = size, seed, epoch_of

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch_of())

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.size, generator=self.generator()).tolist())

    def __len__(self) -> int:
        return self.size


class BucketBatchSampler(Sampler[list[int]]):
    """Training batches: shuffle, cut into buckets of `bucket_batches` batches, sort each bucket by length,
    pack, then shuffle the batch order. Similar lengths share a batch; the order stays random per epoch (with
    `max_tokens` the buckets are drawn once, so that every epoch has the same number of batches). `skip_of(epoch)`:
    how many of the epoch's first batches to leave out, those a resumed checkpoint had trained on."""

    def __init__(
        self,
        sampler: SeededPermutation,
        lengths: Sequence[int],
        batch_size: int,
        max_tokens: int | None = None,
        bucket_batches: int = 50,
        rank: int = 0,
        world_size: int = 1,
        skip_of: Callable[[int], int] = lambda epoch: 0,
    ) -> None:
        self.sampler, self.lengths, self.skip_of = sampler, list(lengths), skip_of
        self.batch_size, self.max_tokens, self.bucket_batches = batch_size, max_tokens, bucket_batches
        self.rank, self.world_size = rank, world_size

    def _batches(self) -> list[list[int]]:
        generator = self.sampler.generator()
        if self.max_tokens is None:
            order = list(self.sampler)
        else:
            # how many token-capped batches there are depends on which sentences share a bucket, and Lightning
            # reads the count once: the buckets then come from the seed alone, only the batch order changes
            fixed = torch.Generator().manual_seed(self.sampler.seed)
            order = torch.randperm(len(self.lengths), generator=fixed).tolist()
        bucket = self.batch_size * self.bucket_batches
        batches = []
        for start in range(0, len(order), bucket):
            chunk = sorted(order[start : start + bucket], key=self.lengths.__getitem__)
            batches += pack(chunk, self.lengths, self.batch_size, self.max_tokens)
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        # every rank must run the same number of steps, or gradient sync waits forever: repeat a few
        # batches so the count divides by the number of processes
        batches += [batches[i % len(batches)] for i in range(-len(batches) % self.world_size)]
        return batches[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        # a generator: the epoch, and how many of its batches to skip, are read at the first batch, after Lightning
        # has set up the epoch and restored the checkpoint of a resumed run
        yield from self._batches()[self.skip_of(self.sampler.epoch_of()) :]

    def __len__(self) -> int:
        return len(self._batches())


class SortedBatchSampler(Sampler[list[int]]):
    """Evaluation batches in length order. Rows of one sentence (its windows) stay in one batch, in order,
    because the metric joins them into one sentence."""

    def __init__(
        self,
        lengths: Sequence[int],
        sentences: Sequence[int],
        batch_size: int,
        max_tokens: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        groups: dict[int, list[int]] = {}
        for row, sentence in enumerate(sentences):
            groups.setdefault(sentence, []).append(row)
        by_length = sorted(groups.values(), key=lambda rows: (max(lengths[r] for r in rows), rows[0]))
        # pack whole sentences: a group's rows count as one unit of its longest row
        unit_lengths = [max(lengths[r] for r in rows) * len(rows) for rows in by_length]
        packed = pack(range(len(by_length)), unit_lengths, batch_size, max_tokens)
        self.batches = [[row for g in batch for row in by_length[g]] for batch in packed][rank::world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
