"""NerDataModule: read any NER source, check and convert its tags, encode once into a cache, batch with little padding."""

import json
import logging
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pyarrow.compute as pc
import torch
from datasets import Dataset, DatasetDict
from torch.utils.data import DataLoader
from transformers import AutoConfig

from lit_ner.data.align import IGNORE, neighbour_words
from lit_ner.data.batching import BucketBatchSampler, SeededPermutation, SortedBatchSampler, attention_mask, padded
from lit_ner.data.books import make_book_corpus
from lit_ner.data import cache
from lit_ner.data.packing import pack_batch, packs_exactly
from lit_ner.data.reading import Reading, check_max_length
from lit_ner.data.encode import encode_batch, load_tokenizer, position_limit
from lit_ner.data.formats import gold_entities
from lit_ner.data.sources import format_options, load_ner_dataset, local_files, with_extra_train
from lit_ner.data.schemes import (
    SCHEMES, TARGETS, build_labels, check_labels, convert_tags, forbidden_pairs, o_lookalikes, scheme_of, split_tag,
    type_spellings,
)
from lit_ner import files
from lit_ner.errors import ConfigError, DataError, space_for
from lit_ner.locations import local_or_hub

log = logging.getLogger(__name__)

# how files are read (lit_ner.data.sources.format_options): the source's, and data.extra_train's
FORMAT_KEYS = (
    "format", "tag_column", "token_prefix", "tokens_field", "tags_field", "label_names", "text_field", "span_policy",
    "overlap_policy", "pretokenizer",
)  # fmt: skip
SOURCE_KEYS = ("path", "hub_name", "hub_config", "hub_revision", "data_files", *FORMAT_KEYS, "validation_fraction",
               "seed")  # fmt: skip
CONTEXTS = ("sentence", "document")  # data.context: what a sentence is read with
PARALLEL_ROWS = 50_000  # a split this large is converted and tokenized on every core


def check_plain(raw: DatasetDict, tags: dict[str, set[str]], where: str) -> None:
    """`data.scheme=plain` promises bare labels: a B-/I- (E-, S-, L-, U-) tag means the data is mislabelled. `tags`:
    each split's tags; only a split holding a prefixed one is read again, for the sentence to name."""
    for name, split in raw.items():
        if all(split_tag(t)[0] in ("", "O") for t in tags[name]):
            continue
        for n, sentence in enumerate(tag_sequences(split)):
            tag = next((t for t in sentence if split_tag(t)[0] not in ("", "O")), None)
            if tag is not None:
                words = " ".join(split[n]["tokens"][:8])
                raise DataError(
                    f"{where} split '{name}', sentence {n} ('{words} ...'): tag {tag!r} has a prefix, but "
                    f"data.scheme=plain means bare labels ({split_tag(tag)[1]}, not {tag}). Fix the tag, or set "
                    "data.scheme=auto (or IOB2, IOBES, ...) if the data is prefixed."
                )


def prepare_tags(
    raw: DatasetDict,
    scheme: str = "auto",
    train_scheme: str = "IOB2",
    labels: list[str] | None = None,
    where: str = "the data",
    scratch: Path | None = None,
) -> tuple[DatasetDict, list[str], dict[str, Any]]:
    """Detect the tag scheme, report invalid transitions per split, convert to `train_scheme`, fix the label list.
    Every check reads the splits' counted tag pairs (`transition_counts`, in Arrow): no corpus is read into Python
    whole, and only a split that must be converted, or that holds an error to name, is read sentence by sentence.
    Tags that would train wrong stop here (`check_spellings`); what is only suspicious (transitions repaired, types
    never trained) is in the report's "warnings", with counts. `scratch`: a folder for the converted splits' Arrow
    files (the cache moves them in)."""
    pairs = {name: transition_counts(split) for name, split in raw.items()}
    tags = {name: {tag for pair in counted for tag in pair} for name, counted in pairs.items()}
    if labels is None:  # a list given names every label on purpose
        check_spellings(raw, pairs, where)
    if scheme == "plain":
        check_plain(raw, tags, where)
    source = scheme_of(sum(pairs.values(), Counter())) if scheme == "auto" else scheme
    report: dict[str, Any] = {"scheme": source, "train_scheme": train_scheme, "invalid_transitions": {}, "warnings": []}
    for name, split in raw.items():
        forbidden = forbidden_pairs(pairs[name], source)
        count = sum(pairs[name][pair] for pair in forbidden)
        examples = first_transitions(split, forbidden)
        report["invalid_transitions"][name] = {"count": count, "examples": examples}
        if count:  # repaired below, as seqeval (and lit_ner's scores) read them: said, with the first ones
            shown = "; ".join(f"sentence {n}, word {i}: {a!r} -> {b!r}" for n, i, a, b in examples[:3])
            report["warnings"].append(
                f"{where} split '{name}': {count} invalid {source} transition{'s'[:count != 1]} (first: {shown}) "
                f"repaired on the way to {train_scheme}, read as seqeval reads them (an I- after O or after another "
                "type opens an entity); if the data means something else there, correct it"
            )
    converted = DatasetDict()
    for name, split in raw.items():
        # valid tags already in the target scheme convert to themselves: no pass over the split
        if source != train_scheme or report["invalid_transitions"][name]["count"]:
            split = split.map(
                lambda batch: {"tags": [convert_tags(t, source, train_scheme) for t in batch["tags"]]},
                batched=True,
                num_proc=processes_for(len(split)),
                desc=f"tags {source} -> {train_scheme} ({name})",
                cache_file_name=str(scratch / f"tags-{name}.arrow") if scratch else None,
            )
            pairs[name] = transition_counts(split)
            tags[name] = {tag for pair in pairs[name] for tag in pair}
        converted[name] = split
    report["warnings"] += untrained_types(converted, pairs, where)
    fixed = labels
    # a nested source's types, some of which may only ever sit inside another entity (no tag holds them)
    inner = {f"B-{t}" for split in raw.values() for t in entity_types_of(split)}
    labels = build_labels([sorted(set().union(*tags.values(), inner))], fixed=fixed, scheme=train_scheme)
    for name, split in converted.items():  # a tag outside a fixed list stops with where it occurs
        if fixed is not None and tags[name] - set(labels):
            check_labels(tag_sequences(split), labels, where=f"{where} split '{name}'")
    if inner - set(labels):
        raise DataError(
            f"{where}: entities of types {sorted(t[2:] for t in inner - set(labels))} are not in data.labels "
            f"{labels}. Add their B- and I- labels, or set data.labels to null to derive the list from the data."
        )
    return converted, labels, report


def check_spellings(raw: DatasetDict, pairs: dict[str, Counter], where: str) -> None:
    """Stop on tags that are one tag typed otherwise (schemes.o_lookalikes, schemes.type_spellings): trained as they
    are, "0" would be an entity type and "b-per" a type apart from "B-PER". Each is named with how often it occurs and
    where first; only then is a split read again, to find that."""

    def shown(tag: str) -> str:
        count = sum(n for counted in pairs.values() for (_, t), n in counted.items() if t == tag)
        name, at = next((name, found[0]) for name, split in raw.items()
                        if (found := first_transitions(split, {p for p in pairs[name] if p[1] == tag}, 1)))  # fmt: skip
        return f"{tag!r} ({count} time{'s'[:count != 1]}, first in split '{name}', sentence {at[0]}, word {at[1]})"

    tags = {tag for counted in pairs.values() for _, tag in counted}
    if lookalikes := o_lookalikes(tags):
        raise DataError(
            f"{where}: {', '.join(map(shown, lookalikes))}: O typed otherwise, each of which would be trained as an "
            "entity type of its own. Write O there; or, if it is a label, list the labels in data.labels."
        )
    if groups := type_spellings(tags):
        spelt = "; ".join(f"{type_!r} in {', '.join(map(shown, found))}" for type_, found in groups[0].items())
        more = f" ({len(groups) - 1} more types are written several ways)" if len(groups) > 1 else ""
        raise DataError(
            f"{where}: one entity type is written {len(groups[0])} ways, which would be trained as {len(groups[0])} "
            f"types: {spelt}{more}. Write each tag one way (B-/I- prefix, a hyphen, the type as elsewhere), or "
            "list them all in data.labels if they are different types."
        )


def untrained_types(splits: DatasetDict, pairs: dict[str, Counter], where: str) -> list[str]:
    """A warning, with counts, for the entity types of validation or test that train never has: the model cannot
    learn them (their entities count as missed), which is fine on purpose and most often a typo or a bad split."""
    if "train" not in splits:
        return []
    counts = {name: entity_counts(split, pairs[name]) for name, split in splits.items()}
    found: dict[str, list[str]] = {}
    for name, counted in counts.items():
        for type_ in sorted(set(counted) - set(counts["train"])):
            found.setdefault(type_, []).append(f"{name} {counted[type_]}")
    if not found:
        return []
    listed = ", ".join(f"{type_} ({', '.join(where_)})" for type_, where_ in sorted(found.items()))
    return [f"{where}: entity types never in train: {listed}. The model cannot learn them and their entities count "
            "as missed; correct them if they are typos, else move some of their sentences into train"]  # fmt: skip


def entity_counts(split: Dataset, pairs: Counter) -> Counter[str]:
    """Entities per type: a nested source's own (`entities`, in Arrow), else the B- and S- tags of its counted
    pairs (tags in IOB2 or IOBES: each entity opens with one)."""
    if "entities" in split.column_names:
        types = pc.struct_field(pc.list_flatten(split.data.column("entities")), "type")
        return Counter({row["values"]: row["counts"] for row in pc.value_counts(types).to_pylist()})
    counts: Counter[str] = Counter()
    for (_, tag), n in pairs.items():
        prefix, type_ = split_tag(tag)
        if prefix in ("B", "S"):
            counts[type_] += n
    return counts


def entity_types_of(split: Dataset) -> set[str]:
    """The types of a nested source's `entities` column (none for a flat one), read in Arrow."""
    if "entities" not in split.column_names:
        return set()
    entities = pc.list_flatten(split.data.column("entities"))
    return set(pc.unique(pc.struct_field(entities, "type")).to_pylist())


def tag_sequences(split: Dataset, block: int = 10_000) -> Iterator[list[str]]:
    """Each sentence's tags, read `block` sentences at a time."""
    for batch in split.select_columns(["tags"]).iter(batch_size=block):
        yield from batch["tags"]


def _tag_blocks(split: Dataset, block: int = 100_000) -> Iterator[tuple[int, list[str], np.ndarray, np.ndarray]]:
    """The split's tags `block` sentences at a time, in Arrow and numpy (no sentence becomes a Python list): the
    block's first sentence, its tags (id 0 is "O"), each sentence's length, and each sentence's tag ids followed by
    an "O", one stream, so that a position and the one before it are a transition as `invalid_transitions` reads
    them (an "O" before and after each sentence)."""
    first = 0
    for batch in split.select_columns(["tags"]).with_format("arrow").iter(batch_size=block):
        column = batch.column("tags").combine_chunks()
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
        flat = pc.list_flatten(column).dictionary_encode()
        ids = np.zeros(len(flat) + len(lengths), dtype=np.int64)
        ids[np.arange(len(flat)) + np.repeat(np.arange(len(lengths)), lengths)] = flat.indices.to_numpy() + 1
        yield first, ["O", *flat.dictionary.to_pylist()], lengths, ids
        first += len(lengths)


def _pair_codes(vocab: list[str], ids: np.ndarray) -> np.ndarray:
    """Each position's (previous tag, tag) as one number: previous * len(vocab) + tag; a block starts a sentence."""
    return np.concatenate(([0], ids[:-1])) * len(vocab) + ids


def transition_counts(split: Dataset) -> Counter[tuple[str, str]]:
    """The split's (previous tag, tag) pairs counted, as `schemes.transition_pairs` counts them, in Arrow."""
    counts: Counter[tuple[str, str]] = Counter()
    for _, vocab, _, ids in _tag_blocks(split):
        codes, found = np.unique(_pair_codes(vocab, ids), return_counts=True)
        for code, n in zip(codes.tolist(), found.tolist()):
            counts[vocab[code // len(vocab)], vocab[code % len(vocab)]] += n
    return counts


def first_transitions(split: Dataset, pairs: set[tuple[str, str]], limit: int = 5) -> list[tuple[int, int, str, str]]:
    """The split's first `limit` transitions among `pairs`, as (sentence, index, previous tag, tag)."""
    found: list[tuple[int, int, str, str]] = []
    for first, vocab, lengths, ids in _tag_blocks(split) if pairs else ():
        codes = _pair_codes(vocab, ids)
        wanted = [c for c in np.unique(codes).tolist() if (vocab[c // len(vocab)], vocab[c % len(vocab)]) in pairs]
        ends = np.cumsum(lengths + 1)  # each sentence's end in the stream, its "O" included
        for at in np.flatnonzero(np.isin(codes, wanted))[: limit - len(found)].tolist():
            n = int(np.searchsorted(ends, at, side="right"))
            index = at - int(ends[n] - lengths[n] - 1)
            found.append((first + n, index, vocab[codes[at] // len(vocab)], vocab[ids[at]]))
        if len(found) == limit:
            break
    return found


def row_lengths(split: Dataset) -> list[int]:
    """Each encoded row's tokens, from the Arrow column (memory-mapped: no row is read into Python)."""
    return pc.list_value_length(split.data.column("input_ids")).to_numpy().tolist()


def sentences_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the heads read of a batch's rows besides tokens and labels (lit_ner.heads.base.segments): whether each
    continues a sentence (a later window), how many words it scores, and, a list a row, its gold spans and the
    sub-tokens of each of its words."""
    return {
        "continues": torch.tensor([r["window"] > 0 for r in rows]),
        "words": torch.tensor([sum(label != IGNORE for label in r["labels"]) for r in rows]),
        "spans": [r["spans"] for r in rows],
        "pieces": [r["pieces"] for r in rows],
    }


def processes_for(rows: int) -> int | None:
    """Processes for a datasets.map over `rows` rows: every core for a large split (a map is Python, one core a
    process), none (this one) for a small one, where starting processes costs more than it saves."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores if rows >= PARALLEL_ROWS and cores > 1 else None


class NerDataModule(L.LightningDataModule):
    """One DataModule for every NER source: Hub name, local files (`path`), or the built-in book corpus.

    `prepare_data` (one process per node) reads, checks, converts and tokenizes, and writes the result to
    a cache folder keyed by everything that affects it; `setup` (every process) only loads that folder.
    """

    def __init__(
        self,
        tokenizer_name_or_path: str,
        path: str | None = None,
        hub_name: str | None = None,
        hub_config: str | None = None,
        hub_revision: str | None = None,
        format: str = "auto",
        data_files: dict[str, list[str]] | None = None,
        extra_train: list[str] | None = None,
        tag_column: int = -1,
        token_prefix: str | None = None,
        tokens_field: str = "tokens",
        tags_field: str | None = None,
        label_names: list[str] | None = None,
        text_field: str | None = None,
        span_policy: str = "snap",
        overlap_policy: str = "refuse",
        synthetic: str | None = None,
        synthetic_size: int = 3000,
        labels: list[str] | None = None,
        scheme: str = "auto",
        train_scheme: str = "IOB2",
        max_length: int = Reading.max_length,
        window_context: int = Reading.window_context,
        context: str = Reading.context,
        context_tokens: int = Reading.context_tokens,
        label_all_tokens: bool = Reading.label_all_tokens,
        pretokenizer: str = Reading.pretokenizer,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        max_tokens: int | None = None,
        bucket_batches: int = 1,
        pack: bool = True,
        pad_to_multiple_of: int | None = None,
        num_workers: int = 0,
        validation_fraction: float = 0.1,
        seed: int = 42,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.skipped = (0, 0)  # (epoch, batches): training epoch `epoch` starts after that many batches (skip)
        if path is None and hub_name is None and synthetic is None:
            raise ConfigError("no data source: set data.path (local files), data.hub_name, or data.synthetic=books")
        if synthetic not in (None, "books"):
            raise ConfigError(f"data.synthetic={synthetic!r} is unknown; the built-in corpus is 'books'")
        if scheme not in ("auto", *SCHEMES) or train_scheme not in TARGETS:
            raise ConfigError(
                f"data.scheme={scheme!r}, data.train_scheme={train_scheme!r}: the scheme is auto or one of "
                f"{', '.join(SCHEMES)}; the train_scheme one of {', '.join(TARGETS)}"
            )
        if context not in CONTEXTS:
            raise ConfigError(
                f"data.context={context!r} is unknown; choose {'|'.join(CONTEXTS)} (document: each sentence is read "
                "with its neighbours in the document)"
            )
        if context_tokens < 0:
            raise ConfigError(f"data.context_tokens={context_tokens}: sub-tokens of document context a side, 0 or more")
        for file in extra_train or ():
            if not Path(file).expanduser().is_file():
                raise ConfigError(f"data.extra_train: {file} is not a file; list files of training sentences, in "
                                  "any format data.path reads")  # fmt: skip
        if bucket_batches < 1:
            raise ConfigError(
                f"data.bucket_batches={bucket_batches}: it must be 1 (random batches) or more (length-sorted buckets "
                "of that many batches)"
            )
        self.datasets: DatasetDict | None = None
        self.tokenizer = None
        self._meta: dict[str, Any] | None = None
        self._cache_path: Path | None = None
        self._hashes = cache.FileHashes(cache.root_of(self.hparams))

    # ---- prepare: read, check, encode, cache --------------------------------------------------------------
    @property
    def cache_path(self) -> Path:
        """Folder of the encoded data: one per (source, its files' content, tokenizer, encoding options). Worked out
        once: a file that changes under data.path during the run (a log, predictions) cannot move it."""
        if self._cache_path is None:
            hp = self.hparams
            read = local_files(Path(hp.path).expanduser(), hp.data_files, hp.format) if hp.path else []
            digests = [(file, self._hashes.digest(file)) for file in read]
            extra = [(file, self._hashes.digest(file)) for file in self.extra_train_files]
            self._cache_path = cache.folder_for(dict(hp), SOURCE_KEYS, digests, extra)
        return self._cache_path

    @property
    def extra_train_files(self) -> list[Path]:
        """data.extra_train: files of sentences that join the train split (read as the source's files are)."""
        return [Path(file).expanduser() for file in self.hparams.extra_train or ()]

    def words_from_source(self, scratch: Path | None = None) -> DatasetDict:
        """The sentences as words and tags (converted to `train_scheme`), read and checked from the source itself
        (not the cache); sets the labels and the scheme report. `scratch`: a folder where local CoNLL files stream
        into Arrow files instead of memory."""
        hp = self.hparams
        if hp.synthetic == "books":
            raw = make_book_corpus(hp.synthetic_size, seed=hp.seed, validation_fraction=hp.validation_fraction)
        else:
            raw = load_ner_dataset(**{k: hp[k] for k in SOURCE_KEYS}, scratch=scratch)
        if self.extra_train_files:
            opts = format_options(**{k: hp[k] for k in FORMAT_KEYS})
            raw = with_extra_train(raw, self.extra_train_files, opts, scratch)
        where = "the book corpus" if hp.synthetic else f"data.path={hp.path}" if hp.path else f"hub {hp.hub_name}"
        words, labels, report = prepare_tags(raw, hp.scheme, hp.train_scheme, hp.labels, where, scratch)
        self._meta = {"labels": labels, **report}
        return words

    def prepare_data(self) -> None:
        target = self.cache_path
        if not cache.complete(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            # the cache folder is shared (sweep jobs, other users of the data): this run removes only what it made,
            # and what runs of this host that are no longer alive left (a kill leaves its working folder behind)
            for name in files.remove_leftovers(target.parent):
                log.info("removed %s, left in the data cache by a run that is gone", target.parent / name)
            # the source streams into Arrow files in the scratch folder, and each pass over it writes its own beside
            # them; the cache moves them in, the rest goes with the folder
            with space_for("the encoded data cache", target.parent, None, cache.THEN):
                with files.work_folder(target) as scratch:
                    self._prepare(target, scratch)
        self._hashes.remember()
        for warning in self.meta.get("warnings", []):  # each run says it, not only the one that read the data
            log.warning(warning)

    def _prepare(self, target: Path, scratch: Path) -> None:
        words = self.words_from_source(scratch)
        meta = self._meta
        tokenizer = load_tokenizer(self.hparams.tokenizer_name_or_path)
        self._check_max_length(tokenizer)
        label2id = {label: i for i, label in enumerate(meta["labels"])}
        read = {name: self._with_context(split) for name, split in words.items()}
        encoded = DatasetDict(
            {
                name: split.map(
                    encode_batch,
                    batched=True,
                    with_indices=True,
                    # every input column, the document context's too: a sentence in windows gives several rows
                    remove_columns=split.column_names,
                    num_proc=processes_for(len(split)),
                    fn_kwargs=dict(
                        tokenizer=tokenizer,
                        label2id=label2id,
                        max_length=self.hparams.max_length,
                        label_all_tokens=self.hparams.label_all_tokens,
                        context=self.hparams.window_context,
                        context_tokens=self.hparams.context_tokens,
                    ),
                    desc=f"tokenizing {name}",
                    cache_file_name=str(scratch / f"encoded-{name}.arrow"),  # moved into the cache, not copied
                )
                for name, split in read.items()
            }
        )
        meta["splits"] = {
            name: {
                "sentences": len(words[name]),
                "rows": len(encoded[name]),
                "split_sentences": pc.sum(pc.equal(encoded[name].data.column("window"), 1)).as_py() or 0,
            }
            for name in words
        }
        for name, info in meta["splits"].items():
            if info["split_sentences"]:
                log.info(
                    "%s: %d sentences longer than max_length=%d sub-tokens were split into overlapping windows "
                    "(each word is scored once)",
                    name, info["split_sentences"], self.hparams.max_length,
                )  # fmt: skip
        cache.write(target, {"words": words, "encoded": encoded}, meta, scratch)

    @property
    def eval_batch_size(self) -> int:
        """Sentences an evaluation batch: data.eval_batch_size, else twice the training batch (no gradients: twice
        the rows fit). Every reading of a model batches so (lit_ner.inference.WordTagger)."""
        return self.hparams.eval_batch_size or self.hparams.batch_size * 2

    def _with_context(self, split: Dataset) -> Dataset:
        """With data.context=document, the words around each sentence in its document, as columns `left_context` and
        `right_context`: computed over the whole split, since the encoder sees it in batches cut anywhere."""
        if self.hparams.context != "document":
            return split
        context = neighbour_words(split["tokens"], split["document"], self.hparams.context_tokens)
        split = split.add_column("left_context", [left for left, _ in context])
        return split.add_column("right_context", [right for _, right in context])

    def wait_for_cache(self, timeout: float = 6 * 3600, poll: float = 2.0) -> None:
        """In the processes that do not prepare the data: wait until the process that does has cached it."""
        cache.wait_for(self.cache_path, timeout, poll)

    def _check_max_length(self, tokenizer: Any) -> None:
        config = AutoConfig.from_pretrained(local_or_hub(self.hparams.tokenizer_name_or_path, "model.model_name_or_path"))
        check_max_length(self.hparams.max_length, position_limit(config), tokenizer.num_special_tokens_to_add(),
                         "data.max_length")  # fmt: skip

    # ---- setup ---------------------------------------------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        if self._meta is None:
            meta_file = self.cache_path / "meta.json"
            if not cache.complete(self.cache_path):
                raise RuntimeError("call prepare_data() before asking for labels: the data is not encoded yet")
            self._meta = json.loads(meta_file.read_text(encoding="utf-8"))
        return self._meta

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    def setup(self, stage: str | None = None) -> None:
        if self.datasets is not None:  # fit then test in one run: encode and load once
            return
        self.datasets = cache.read(self.cache_path, "encoded")
        self.tokenizer = load_tokenizer(self.hparams.tokenizer_name_or_path)

    def cached_words(self) -> DatasetDict:
        """The words and tags `prepare_data` cached beside the encoded rows (what the model is scored against)."""
        return cache.read(self.cache_path, "words")

    def train_sentences(self) -> list[tuple[list[str], list[tuple[str, int, int]]]]:
        """The training split's (words, gold entities) (what a head may configure itself from)."""
        train = self.cached_words()["train"]
        return list(zip(train["tokens"], gold_entities(train)))

    # ---- loaders -------------------------------------------------------------------------------------------
    def _distribution(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, split: Dataset, batch_sampler: Any, collate: Any = None) -> DataLoader:
        return DataLoader(
            split,
            batch_sampler=batch_sampler,
            collate_fn=collate or self.collate,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def skip(self, epoch: int, batches: int) -> None:
        """Start training epoch `epoch` after its first `batches` batches: those a resumed checkpoint had trained on
        (lit_ner.resume.ExactResume says which). The batch order depends on (seed, epoch) alone, so the rest of the
        epoch is what the uninterrupted run saw."""
        self.skipped = (epoch, batches)

    def check_packing(self, model: torch.nn.Module) -> None:
        """With data.pack, train on padded batches instead if `model` does not read packed rows exactly
        (lit_ner.data.packing.packs_exactly); says so."""
        if self.hparams.pack and not packs_exactly(model, model.config.vocab_size):
            log.warning(
                "data.pack: %s does not read sentences packed into one row as it reads them alone (it needs "
                "position_ids and transformers' packed-sequence masks): training on padded batches, which give "
                "the same model more slowly. Set data.pack=false to silence this.", type(model).__name__,
            )  # fmt: skip
            self.hparams.pack = False

    def train_dataloader(self) -> DataLoader:
        split = self.datasets["train"]
        rank, world = self._distribution()
        lengths = row_lengths(split)
        sampler = BucketBatchSampler(
            SeededPermutation(len(lengths), self.hparams.seed, lambda: self.trainer.current_epoch if self.trainer else 0),
            lengths,
            self.hparams.batch_size,
            self.hparams.max_tokens,
            bucket_batches=self.hparams.bucket_batches,
            rank=rank,
            world_size=world,
            skip_of=lambda epoch: self.skipped[1] if epoch == self.skipped[0] else 0,
        )
        return self._loader(split, sampler, self.collate_packed if self.hparams.pack else self.collate)

    def eval_dataloader(self, name: str) -> DataLoader | None:
        if name not in self.datasets:
            return None
        split = self.datasets[name]
        rank, world = self._distribution()
        batch_size = self.eval_batch_size
        if world > 1:  # Lightning stops when a process gets no batch: a split this small gets smaller batches
            batch_size = max(1, min(batch_size, len(set(split["sentence"])) // world))
        sampler = SortedBatchSampler(
            row_lengths(split),
            split.data.column("sentence").to_numpy(),
            batch_size,
            # no more than 16 tokens a row on average: batches of long sentences get fewer rows, which bounds
            # memory and, on CPU, ran evaluation 1.1-1.4x faster than full batches of long rows (docs/benchmarks.md)
            self.hparams.max_tokens or 16 * batch_size,
            rank=rank,
            world_size=world,
        )
        return self._loader(split, sampler)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("validation")

    def test_dataloader(self) -> DataLoader | None:
        return self.eval_dataloader("test")

    def _pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def collate_packed(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """A training batch with its sentences packed into shared rows (data.pack; lit_ner.data.packing)."""
        keys = ["labels", "all_labels"] if self.hparams.label_all_tokens else ["labels"]
        return pack_batch(rows, self._pad_id(), keys) | sentences_of(rows)

    def collate(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Pad to the longest row of the batch (or the next multiple of `pad_to_multiple_of`, for tensor cores)."""
        longest = max(len(r["input_ids"]) for r in rows)
        multiple = self.hparams.pad_to_multiple_of
        if multiple:
            longest = -(-longest // multiple) * multiple
        ids = [r["input_ids"] for r in rows]
        batch = {
            "input_ids": padded(ids, self._pad_id(), longest),
            "attention_mask": attention_mask(ids, longest),
            "labels": padded([r["labels"] for r in rows], IGNORE, longest),
            "sentence": torch.tensor([r["sentence"] for r in rows]),  # which sentence of the split each row reads
        } | sentences_of(rows)
        if self.hparams.label_all_tokens:
            batch["all_labels"] = padded([r["all_labels"] for r in rows], IGNORE, longest)
        return batch
