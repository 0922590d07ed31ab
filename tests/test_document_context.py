"""data.context=document (FLERT): readers keep documents, each sentence is read with its document neighbours as
unscored context, and the same encoding serves training, evaluation and prediction."""

import json
from pathlib import Path

import pytest
from datasets import Dataset
from hypothesis import given, settings
from hypothesis import strategies as st

from lit_ner.data import NerDataModule
from lit_ner.data.align import IGNORE, fit_context, neighbour_words
from lit_ner.data.encode import encode_batch, load_tokenizer, special_tokens
from lit_ner.data.formats import read_conll
from lit_ner.data.sources import load_ner_dataset
from lit_ner.errors import ConfigError

from conftest import WORDS

DOCS = (
    "-DOCSTART- -X- O\n\nJohn NNP B-PER\nwrote VBD O\n\nin IN O\nParis NNP B-LOC\n\n"
    "-DOCSTART- -X- O\n\nAnna NNP B-PER\n\n"
)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---- readers keep the documents


def test_conll_docstart_starts_a_new_document(tmp_path: Path) -> None:
    tokens, _, documents = read_conll(write(tmp_path, "x.txt", DOCS + "-DOCSTART- -X- O\nBo NNP B-PER\n"))
    assert tokens == [["John", "wrote"], ["in", "Paris"], ["Anna"], ["Bo"]]
    assert documents == [0, 0, 1, 2]


def test_documents_never_continue_into_the_next_file_of_a_split(tmp_path: Path) -> None:
    write(tmp_path, "train/a.txt", "a O\n\nb O\n")  # no -DOCSTART-: one document per file
    write(tmp_path, "train/b.txt", "c O\n\nd O\n")
    write(tmp_path, "dev.txt", "e O\n")
    dd = load_ner_dataset(path=str(tmp_path), data_files={"train": ["train/*.txt"], "validation": ["dev.txt"]})
    assert dd["train"]["tokens"] == [["a"], ["b"], ["c"], ["d"]]
    assert dd["train"]["document"] == [0, 0, 1, 1]


def test_jsonl_document_field_groups_consecutive_sentences(tmp_path: Path) -> None:
    rows = [("x", "a"), ("x", "b"), ("y", "c"), (None, "d"), (None, "e"), ("x", "f")]
    text = "".join(
        json.dumps({"tokens": [w], "tags": ["O"]} | ({"document": d} if d else {})) + "\n" for d, w in rows
    )
    write(tmp_path, "train.jsonl", text)
    write(tmp_path, "dev.jsonl", text)
    # a record without the field is its own document; "x" coming back later is a new document (not adjacent)
    assert load_ner_dataset(path=str(tmp_path))["validation"]["document"] == [0, 0, 1, 2, 3, 4]


def test_parquet_docstart_rows_mark_documents_and_are_dropped(tmp_path: Path) -> None:
    tokens = [["-DOCSTART-"], ["John", "wrote"], ["in", "Paris"], ["-DOCSTART-"], ["Anna"]]
    tags = [["O"], ["B-PER", "O"], ["O", "B-LOC"], ["O"], ["B-PER"]]
    for split in ("train", "validation"):
        Dataset.from_dict({"tokens": tokens, "tags": tags}).to_parquet(str(tmp_path / f"{split}.parquet"))
    dev = load_ner_dataset(path=str(tmp_path))["validation"]
    assert dev["tokens"] == [["John", "wrote"], ["in", "Paris"], ["Anna"]]
    assert dev["document"] == [1, 1, 2]


def test_sources_without_documents_make_each_sentence_its_own(tmp_path: Path) -> None:
    write(tmp_path, "train.txt", "a O\n\nb O\n\n\nc O\n")
    write(tmp_path, "dev.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": [], "tags": []}\n{"tokens": ["b"], "tags": ["O"]}\n')
    dd = load_ner_dataset(path=str(tmp_path))
    assert dd["train"]["document"] == [0, 0, 0]  # a CoNLL file without -DOCSTART- is one document
    assert dd["validation"]["document"] == [0, 2]  # the empty sentence is dropped, the ids stay


# ---- which neighbours, and how many of their words


def test_neighbour_words_stay_in_the_document_nearest_words_first() -> None:
    sentences = [["a", "b"], ["c"], ["d", "e", "f"], ["g"], ["h"]]
    context = neighbour_words(sentences, [0, 0, 0, 0, 1], limit=3)
    assert context[0] == ([], ["c", "d", "e"])
    assert context[2] == (["a", "b", "c"], ["g"])  # "h" is in the next document
    assert context[3] == (["d", "e", "f"], [])  # the 3 nearest words, in reading order
    assert context[4] == ([], [])


def test_fit_context_keeps_the_nearest_words_within_the_side_limit_and_the_room() -> None:
    # lengths in reading order: the left side's nearest word is its last
    assert fit_context([5, 1, 1], [1, 1, 5], limit=4, room=100) == (2, 2)  # 5 would pass the side's limit
    assert fit_context([1, 1, 1], [1, 1, 1], limit=64, room=3) == (2, 1)  # tight: the sides take turns
    assert fit_context([1], [1], limit=64, room=0) == (0, 0)
    assert fit_context([3, 1], [], limit=64, room=2) == (1, 0)  # never skips a word for a farther one


# ---- the encoded rows


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path):
    return load_tokenizer(str(tiny_model))


LABELS = {"O": 0, "B-X": 1, "I-X": 2}
# words with 1 to 5 sub-tokens in the tiny vocabulary (whole words, or letters glued into ##pieces)
word = st.one_of(st.sampled_from(WORDS), st.text("xyzq", min_size=1, max_size=5))
sentence = st.lists(st.tuples(word, st.sampled_from(list(LABELS))), min_size=1, max_size=12)
corpus = st.lists(st.tuples(st.integers(0, 2), sentence), min_size=1, max_size=10)


@settings(max_examples=60, deadline=None)
@given(corpus=corpus, max_length=st.integers(8, 40), context_tokens=st.integers(0, 12))
def test_every_word_is_scored_once_and_context_is_its_documents_neighbours(
    tokenizer, corpus, max_length: int, context_tokens: int
) -> None:
    documents = sorted(d for d, _ in corpus)  # ids as readers give them: non-decreasing
    tokens = [[w for w, _ in s] for _, s in corpus]
    tags = [[t for _, t in s] for _, s in corpus]
    context = neighbour_words(tokens, documents, context_tokens)
    batch = {"tokens": tokens, "tags": tags, "left_context": [l for l, _ in context],
             "right_context": [r for _, r in context]}  # fmt: skip
    rows = encode_batch(batch, range(len(tokens)), tokenizer, LABELS, max_length, False, 2, context_tokens)
    prefix, suffix = special_tokens(tokenizer)

    def pieces(words: list[str]) -> list[list[int]]:
        return [tokenizer(w, add_special_tokens=False)["input_ids"][: max_length - 2] or [tokenizer.unk_token_id]
                for w in words]  # fmt: skip

    scored = {i: [] for i in range(len(tokens))}
    for ids, labels, i, window in zip(rows["input_ids"], rows["labels"], rows["sentence"], rows["window"]):
        assert len(ids) <= max_length
        scored[i] += [label for label in labels if label != IGNORE]
        own = [p for word_pieces in pieces(tokens[i]) for p in word_pieces]
        if window or len(ids) - len(prefix) - len(suffix) < len(own):
            continue  # a sentence longer than the row: windows, as without document context
        first = labels.index(next(label for label in labels if label != IGNORE))
        body = ids[len(prefix) : len(ids) - len(suffix)]
        left, right = body[: first - len(prefix)], body[first - len(prefix) + len(own) :]
        assert body[len(left) : len(left) + len(own)] == own
        assert len(left) <= context_tokens and len(right) <= context_tokens
        # the context is whole words of the same document's adjacent sentences, nearest first
        before = pieces([w for j in range(i) if documents[j] == documents[i] for w in tokens[j]])
        after = pieces([w for j in range(i + 1, len(tokens)) if documents[j] == documents[i] for w in tokens[j]])
        assert left in [sum(before[len(before) - k :], []) for k in range(len(before) + 1)]
        assert right in [sum(after[:k], []) for k in range(len(after) + 1)]
        if documents.count(documents[i]) == 1:
            assert left == right == []
    # only the own words carry labels, each word exactly once, with its own label
    assert scored == {i: [LABELS[t] for t in sentence_tags] for i, sentence_tags in enumerate(tags)}


def test_a_sentence_reads_its_neighbours_when_they_fit(tokenizer) -> None:
    tokens = [["john", "wrote"], ["in", "paris"], ["anna"]]
    batch = {"tokens": tokens, "tags": [["O", "O"], ["O", "O"], ["O"]],
             "left_context": [[], ["john", "wrote"], []], "right_context": [["in", "paris"], [], []]}  # fmt: skip
    rows = encode_batch(batch, range(3), tokenizer, LABELS, 64, False, 2, 64)
    read = [tokenizer.convert_ids_to_tokens(ids)[1:-1] for ids in rows["input_ids"]]
    assert read == [["john", "wrote", "in", "paris"], ["john", "wrote", "in", "paris"], ["anna"]]
    assert rows["labels"][1] == [IGNORE, IGNORE, IGNORE, 0, 0, IGNORE]
    tight = encode_batch(batch, range(3), tokenizer, LABELS, 5, False, 2, 64)  # 3 sub-tokens: own 2 + 1 context
    assert [tokenizer.convert_ids_to_tokens(ids)[1:-1] for ids in tight["input_ids"]][:2] == [
        ["john", "wrote", "in"], ["wrote", "in", "paris"]
    ]


def test_context_setting_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"data.context='paragraph' is unknown; choose sentence\|document"):
        NerDataModule("x", synthetic="books", context="paragraph")
    with pytest.raises(ConfigError, match=r"data.context_tokens=-1"):
        NerDataModule("x", synthetic="books", context="document", context_tokens=-1)


# ---- training, evaluation and prediction read the same rows

NAMES, CITIES = ["john", "mary", "anna", "peter", "alan"], ["paris", "london", "berlin", "york"]


def document_corpus(seed: int, documents: int) -> str:
    """CoNLL text: documents of 2-4 sentences, names B-PER/I-PER and cities B-LOC among the tiny vocabulary's words."""
    import random

    rng = random.Random(seed)
    fillers = [w for w in WORDS if w not in NAMES + CITIES + ["smith", "walker"]]
    lines = []
    for _ in range(documents):
        lines.append("-DOCSTART- O\n")
        for _ in range(rng.randint(2, 4)):
            words = [(w, "O") for w in rng.sample(fillers, rng.randint(2, 6))]
            words.insert(rng.randrange(len(words)), (rng.choice(NAMES), "B-PER"))
            words.insert(rng.randrange(len(words)), (rng.choice(["smith", "walker"]), "I-PER"))
            words.insert(rng.randrange(len(words)), (rng.choice(CITIES), "B-LOC"))
            lines += [f"{w} {t}\n" for w, t in words] + ["\n"]
    return "".join(lines)


@pytest.fixture(scope="module")
def trained(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, make_cfg) -> tuple[Path, Path]:
    from lit_ner.train import train

    root = tmp_path_factory.mktemp("document_context")
    for split, seed, n in (("train", 1, 40), ("dev", 2, 8), ("test", 3, 8)):
        write(root / "data", f"{split}.txt", document_corpus(seed, n))
    result = train(make_cfg(
        root / "run", tiny_model, root / "cache", "data=local", f"data.path={root / 'data'}", "data.context=document",
        "data.context_tokens=8", "data.max_length=128", "model.lr=1e-3", "trainer.max_epochs=2", size=None,
    ))  # fmt: skip
    assert result["scores"]["test/f1"] >= 0  # trained, validated and tested
    return root, Path(result["export"])


class Recorder:
    """Wraps a model's forward to keep the rows it reads (padding removed)."""

    def __init__(self, model) -> None:
        self.rows: list[list[int]] = []
        self.forward = model.forward
        model.forward = self

    def __call__(self, input_ids, attention_mask, **kwargs):
        self.rows += [ids[mask.bool()].tolist() for ids, mask in zip(input_ids, attention_mask)]
        return self.forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)


def test_document_context_trains_evaluates_and_predicts_as_evaluated(trained, tiny_model: Path, caplog) -> None:
    from seqeval.metrics.sequence_labeling import get_entities

    from lit_ner.app import compose_config
    from lit_ner.evaluate import evaluate
    from lit_ner.predict import NerPredictor, main

    root, export = trained
    data = ["data=local", f"data.path={root / 'data'}", "data.context=document", "data.context_tokens=8",
            "data.max_length=128", f"data.cache_dir={root / 'cache'}"]  # fmt: skip
    conll = root / "eval" / "test.conll"
    cfg = compose_config("evaluate", [f"model.model_name_or_path={export}", f"output_dir={root / 'eval'}",
                                      f"conll={conll}", *data])  # fmt: skip
    evaluate(cfg)
    assert "was trained with data.context=document" not in caplog.text
    sentence_cfg = compose_config("evaluate", [f"model.model_name_or_path={export}", f"output_dir={root / 'eval2'}",
                                               *data[:-4], "data.context=sentence", *data[-3:]])  # fmt: skip
    evaluate(sentence_cfg)  # the export says document: reading sentences alone is named, with the key to pass
    assert "was trained with data.context=document but this evaluation reads data.context=sentence" in caplog.text
    words = NerDataModule(str(tiny_model), path=str(root / "data"), context="document", context_tokens=8,
                          max_length=128, cache_dir=str(root / "cache"))  # fmt: skip
    words.prepare_data()
    words.setup()
    test = words.cached_words()["test"].to_dict()
    encoded = words.datasets["test"].to_dict()
    # the rows hold their neighbours: more sub-tokens than the sentence's own words, which alone are scored
    assert sum(len(ids) for ids in encoded["input_ids"]) > sum(len(r) + 2 for r in words.tokenizer(test["tokens"],
               is_split_into_words=True, add_special_tokens=False)["input_ids"])  # fmt: skip
    assert [sum(label != IGNORE for label in labels) for labels in encoded["labels"]] == [len(t) for t in test["tokens"]]

    blocks = conll.read_text().strip("\n").split("\n\n")
    predicted = [[line.split(" ")[2] for line in block.splitlines()] for block in blocks]
    assert len(predicted) == len(test["tokens"])
    predictor = NerPredictor.from_pretrained(export, aggregation_strategy="first", device="cpu")
    assert predictor.reading.context_tokens == 8  # from the export's config.json
    recorder = Recorder(predictor.runner.model)
    found = predictor.words(test["tokens"], documents=test["document"])
    # predict reads exactly the rows evaluate read, and finds the entities evaluate scored
    assert sorted(recorder.rows) == sorted(encoded["input_ids"])
    assert [[(e["type"], e["word_start"], e["word_end"]) for e in entities] for entities in found] == [
        [(kind, start, end + 1) for kind, start, end in get_entities(tags)] for tags in predicted
    ]
    assert predictor.words(test["tokens"]) != found  # read alone, the sentences get other entities from this model
    # the command line: JSON lines records with "tokens" and "document"
    records = root / "test.jsonl"
    records.write_text("".join(json.dumps({"tokens": t, "document": d}) + "\n"
                               for t, d in zip(test["tokens"], test["document"])))  # fmt: skip
    main([f"model={export}", f"input={records}", f"output={root / 'out.jsonl'}", "aggregation=first", "device=cpu"])
    lines = [json.loads(line) for line in (root / "out.jsonl").read_text().splitlines()]
    assert [line["entities"] for line in lines] == found


def test_a_document_given_as_one_text_is_read_whole(trained) -> None:
    from lit_ner.predict import NerPredictor

    _, export = trained
    predictor = NerPredictor.from_pretrained(export, device="cpu")
    recorder = Recorder(predictor.runner.model)
    text = "john smith wrote a book in paris. the author said today. anna met peter in berlin."
    predictor(text)
    assert len(recorder.rows) == 1  # one window: each sentence between its neighbours, none cut off alone
    assert predictor.tokenizer.decode(recorder.rows[0], skip_special_tokens=True) == text


def test_the_context_settings_key_the_cache(tmp_path: Path) -> None:
    def folder(**context) -> Path:
        return NerDataModule("x", synthetic="books", cache_dir=str(tmp_path), **context).cache_path

    paths = {folder(), folder(context="document"), folder(context="document", context_tokens=32)}
    assert len(paths) == 3  # a cached sentence-level encoding is never served for document context, or vice versa


def test_evaluate_command_reads_as_the_export_was_trained(trained, tmp_path: Path) -> None:
    import subprocess
    import sys

    from lit_ner.app import compose_config
    from lit_ner.evaluate import evaluate

    root, export = trained
    data = ["data=local", f"data.path={root / 'data'}", "data.max_length=128", f"data.cache_dir={root / 'cache'}"]
    given = evaluate(compose_config("evaluate", [f"model.model_name_or_path={export}", f"output_dir={tmp_path / 'a'}",
                                                 *data, "data.context=document", "data.context_tokens=8"]))  # fmt: skip
    alone = evaluate(compose_config("evaluate", [f"model.model_name_or_path={export}", f"output_dir={tmp_path / 'b'}",
                                                 *data, "data.context=sentence"]))  # fmt: skip
    assert alone["scores"] != given["scores"]  # so the comparisons below can tell the two readings apart
    # evaluate(cfg) is the command: in a notebook too, the keys not given are read as the export was trained
    adopted = evaluate(compose_config("evaluate", [f"model.model_name_or_path={export}",
                                                   f"output_dir={tmp_path / 'd'}", *data]))  # fmt: skip
    assert adopted["scores"] == given["scores"]
    done = subprocess.run(
        [sys.executable, "-m", "lit_ner.evaluate", f"model={export}", *data, f"output_dir={tmp_path / 'c'}",
         f"hydra.run.dir={tmp_path / 'c'}"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "reading as the model was trained" in done.stderr and "data.context=document" in done.stderr
    assert json.loads((tmp_path / "c" / "report.json").read_text())["scores"] == given["scores"]
