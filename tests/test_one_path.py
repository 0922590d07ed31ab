"""One reading of a trained model, for every head and backend: evaluate's predictions (predictions.jsonl, and its
CoNLL file), lit_ner.predict's output, NerPredictor's entities and the service's answers are the same in every
sentence, and evaluate's F1 is the F1 of those entities; with sentences longer than max_length (windows), with
sentence and with document context, with nested entities (the span head), on torch and on ONNX Runtime."""

import json
import random
from pathlib import Path

import pytest
from seqeval.metrics import f1_score

from lit_ner.app import compose_config
from lit_ner.data.formats import read_conll
from lit_ner.data.schemes import entity_spans
from lit_ner.evaluate import evaluate
from lit_ner.predict import NerPredictor, main
from lit_ner.train import train

NAMES, CITIES = ["john", "mary", "anna", "peter", "alan"], ["paris", "london", "berlin", "york"]
FILLERS = "the a of in and to was by is his her book novel wrote written published first city river said".split()
# (name, head options, context, nested data): each trains the tiny model once for the module
MODELS = [("token", "head=token", "sentence", False), ("token-document", "head=token", "document", False),
          ("crf", "head=crf", "sentence", False), ("span", "head=span", "sentence", False),
          ("span-nested", "head=span", "sentence", True),
          ("distilled", "head=token", "sentence", False)]  # fmt: skip


def corpus(seed: int, documents: int) -> str:
    """CoNLL text: documents of 2-4 sentences with PER and LOC entities; one sentence in four is long enough to be
    read in windows at max_length=32."""
    rng = random.Random(seed)
    lines = []
    for _ in range(documents):
        lines.append("-DOCSTART- O\n\n")
        for _ in range(rng.randint(2, 4)):
            long = rng.random() < 0.25
            words = [(w, "O") for w in rng.choices(FILLERS, k=rng.randint(30, 40) if long else rng.randint(2, 6))]
            words.insert(rng.randrange(len(words)), (rng.choice(NAMES), "B-PER"))
            words.insert(rng.randrange(len(words)), (rng.choice(["smith", "walker"]), "I-PER"))
            words.insert(rng.randrange(len(words)), (rng.choice(CITIES), "B-LOC"))
            lines += [f"{w} {t}\n" for w, t in words] + ["\n"]
    return "".join(lines)


def nested_corpus(seed: int, n: int) -> str:
    """JSON lines of words with word-offset entities that nest: an ORG "<city> university" holds a LOC "<city>", a
    PER "<name> <surname>" stands apart; one sentence in four is long (windows at max_length=32)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = rng.choices(FILLERS, k=rng.randint(30, 36) if rng.random() < 0.25 else rng.randint(2, 5))
        entities = []
        at = rng.randrange(len(words) + 1)
        words[at:at] = [rng.choice(CITIES), "university"]
        entities += [{"start": at, "end": at + 2, "type": "ORG"}, {"start": at, "end": at + 1, "type": "LOC"}]
        at = rng.choice([i for i in range(len(words) + 1) if not at < i < at + 2])
        words[at:at] = [rng.choice(NAMES), rng.choice(["smith", "walker"])]
        entities = [e | {k: e[k] + 2 for k in ("start", "end") if e["start"] >= at} for e in entities]
        entities.append({"start": at, "end": at + 2, "type": "PER"})
        lines.append(json.dumps({"tokens": words, "entities": entities}) + "\n")
    return "".join(lines)


@pytest.fixture(scope="module", params=MODELS, ids=[m[0] for m in MODELS])
def trained(request, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, make_cfg) -> tuple[Path, Path, bool]:
    """(data folder, export, whether the data nests) of the tiny model trained with this head and context, and
    max_length=32 (windows)."""
    name, head, context, nested = request.param
    root = tmp_path_factory.mktemp(f"one_path_{name}")
    (root / "data").mkdir()
    for split, seed, n in (("train", 1, 60), ("dev", 2, 10), ("test", 3, 12)):
        if nested:
            (root / "data" / f"{split}.jsonl").write_text(nested_corpus(seed, n * 3))
        else:
            (root / "data" / f"{split}.txt").write_text(corpus(seed, n))
    settings = [
        "data=local", f"data.path={root / 'data'}", head, f"data.context={context}", "data.context_tokens=8",
        "data.max_length=32", "data.window_context=4", "model.lr=3e-3",
        "trainer.max_epochs=3" if nested else "trainer.max_epochs=2", "test=false",
    ]  # fmt: skip
    result = train(make_cfg(root / "run", tiny_model, root / "cache", *settings, size=None))
    if name == "distilled":  # a one-layer student of the two-layer model, taught by it
        teacher = result["export"]
        result = train(make_cfg(root / "student", teacher, root / "cache", *settings, "model.num_layers=1",
                                f"distill.teacher={teacher}", size=None))  # fmt: skip
    return root, Path(result["export"]), nested


def split_of(root: Path, nested: bool) -> tuple[list[list[str]], list, list[int] | None]:
    """The test split's words, gold entities and documents, read as training reads them."""
    if nested:
        records = [json.loads(line) for line in (root / "data" / "test.jsonl").read_text().splitlines()]
        gold = [sorted((e["type"], e["start"], e["end"]) for e in r["entities"]) for r in records]
        return [r["tokens"] for r in records], gold, None
    words, tags, documents = read_conll(root / "data" / "test.txt")
    return words, [entity_spans(t) for t in tags], documents


def evaluated(root: Path, export: Path, out: Path, *overrides: str) -> tuple[dict, list[list[tuple]], list[list[str]]]:
    """evaluate's report, each sentence's predicted entities (predictions.jsonl) and predicted tags (conll=)."""
    args = [f"model.model_name_or_path={export}", f"output_dir={out}", f"conll={out / 'test.conll'}", "data=local",
            f"data.path={root / 'data'}", f"data.cache_dir={root / 'cache'}", *overrides]  # fmt: skip
    report = evaluate(compose_config("evaluate", args))  # reads as the export was trained
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    entities = [[(e["type"], e["start"], e["end"]) for e in p["entities"]] for p in predictions]
    blocks = (out / "test.conll").read_text().strip("\n").split("\n\n")
    return report, entities, [[line.split(" ")[2] for line in block.splitlines()] for block in blocks]


def found(entities: list[list[dict]]) -> list[list[tuple]]:
    return [[(e["type"], e["word_start"], e["word_end"]) for e in sentence] for sentence in entities]


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_evaluate_predict_the_predictor_and_the_service_read_the_model_alike(trained, tmp_path: Path, backend: str) -> None:
    root, export, nested = trained
    options = [f"backend={backend}"]
    if backend == "onnx":
        pytest.importorskip("onnxruntime", reason="the onnx extra: pip install -e '.[dev]'")
        from lit_ner.export_onnx import export_onnx
        from lit_ner.runners import onnx_path

        if not onnx_path(export).is_file():
            export_onnx(export)
    report, by_evaluate, tags_by_evaluate = evaluated(root, export, tmp_path / "eval", *options)
    words, gold, documents = split_of(root, nested)
    assert report["windowed_sentences"] > 0  # sentences longer than max_length were read in windows
    assert sum(map(len, by_evaluate)) >= len(words) // 2, "the model must find entities, or this proves nothing"
    if nested:
        assert any(len(s) > len({(a, b) for _, a, b in s}) or any(
            x[1] <= y[1] and y[2] <= x[2] and x != y for x in s for y in s) for s in by_evaluate), "nothing nested"

    # the entities evaluate scored are its F1's: exact spans against the gold
    hits = sum(len(set(p) & set(g)) for p, g in zip(by_evaluate, gold))
    f1 = 2 * hits / (sum(map(len, by_evaluate)) + sum(map(len, gold)))
    assert report["scores"]["default"]["micro avg"]["f1"] == pytest.approx(f1, abs=1e-12)

    predictor = NerPredictor.from_pretrained(export, backend=backend, device=None if backend == "onnx" else "cpu")
    assert found(predictor.words(words, documents=documents)) == by_evaluate

    if not nested:  # lit_ner.predict's CoNLL column: every word's tag, and seqeval's F1 of them evaluate's
        tagged = tmp_path / "tagged.conll"
        main([f"model={export}", f"input={root / 'data' / 'test.txt'}", f"output={tagged}", "format=conll", *options])
        blocks = [b for b in tagged.read_text().split("\n\n") if b.strip() and not b.startswith("-DOCSTART-")]
        by_predict = [[line.split(" ")[-1] for line in block.strip("\n").splitlines()] for block in blocks]
        assert by_predict == tags_by_evaluate
        gold_tags = read_conll(root / "data" / "test.txt")[1]
        assert f1_score(gold_tags, by_predict) == pytest.approx(report["scores"]["default"]["micro avg"]["f1"], abs=1e-12)
    else:  # lit_ner.predict's JSON lines of pre-split words
        source, out = tmp_path / "words.jsonl", tmp_path / "entities.jsonl"
        source.write_text("".join(json.dumps({"tokens": w}) + "\n" for w in words))
        main([f"model={export}", f"input={source}", f"output={out}", *options])
        assert found([json.loads(line)["entities"] for line in out.read_text().splitlines()]) == by_evaluate

    pytest.importorskip("litserve", reason="the serve extra: pip install -e '.[dev]'")
    # a request is one sentence: the service reads it alone (a document-context model too, with no document)
    alone = by_evaluate if predictor.reading.context == "sentence" else found(predictor.words(words))
    assert served(export, backend, words) == alone


def served(export: Path, backend: str, words: list[list[str]]) -> list[list[tuple]]:
    """The service's answers to one `{"tokens": words}` request a sentence, all in one batch (lit_ner.serve.NerAPI's
    steps, in-process: the batches evaluate reads, so that the two agree to the last bit even where the tiny model
    hesitates; tests/test_serve.py runs the HTTP server itself, with the batches it forms)."""
    import torch

    from lit_ner.serve import Limits, NerAPI

    # this process's threads (the worker's own count would change the order of float sums: another last bit)
    limits = Limits(texts=1, words=100_000, chars=100_000)
    api = NerAPI(str(export), backend, None, limits, torch.get_num_threads(), max_batch_size=len(words))
    api.setup("cpu")
    requests = [api.decode_request({"tokens": sentence}) for sentence in words]
    return found([api.encode_response(o)["entities"] for o in api.unbatch(api.predict(api.batch(requests)))])


def test_document_context_changes_what_is_read(trained, tmp_path: Path) -> None:
    """The pairs above would agree trivially if both sides ignored the context: with a document-context model,
    reading sentences alone gives other tags, and evaluate told to do so matches predict told the same."""
    root, export, _ = trained
    if NerPredictor.from_pretrained(export, device="cpu").reading.context != "document":
        pytest.skip("a sentence-context model has no other reading")
    _, in_documents, _ = evaluated(root, export, tmp_path / "a")
    _, alone, _ = evaluated(root, export, tmp_path / "b", "data.context=sentence")
    assert alone != in_documents
