"""`python -m benchmarks.nested_misses --model <span export> --data <folder with train and dev JSON lines>`: which gold
entities that sit inside another the model finds on the dev file, read as predict and evaluate read them, and how
often the training file labels each one's words where they appear inside a longer entity. For each entity it missed:
the model's probability of "no entity" on its span. docs/quality.md, Heads (why the span head misses inner entities).
"""

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from lit_ner.data.formats import gold_entities, read_split_files
from lit_ner.data.schemes import inside
from lit_ner.data.sources import format_options
from lit_ner.heads.base import softmax
from lit_ner.predictor import NerPredictor

OPTIONS = format_options("json")  # the data side's defaults for JSON lines


def read(path: Path) -> tuple[list[list[str]], list[list[tuple[str, int, int]]]]:
    split = read_split_files([path], OPTIONS)
    return split["tokens"], gold_entities(split)


def inner_labelled(words: list[list[str]], gold: list[list[tuple[str, int, int]]]) -> tuple[Counter, Counter]:
    """Per word string: how often it is a run of words inside a longer gold entity, and how often that run is itself
    a gold entity."""
    seen, labelled = Counter(), Counter()
    for tokens, entities in zip(words, gold):
        spans = {(s, e) for _, s, e in entities}
        for s, e in spans:
            for a in range(s, e):
                for b in range(a + 1, e + 1):
                    if (a, b) != (s, e):
                        text = " ".join(tokens[a:b])
                        seen[text] += 1
                        labelled[text] += (a, b) in spans
    return seen, labelled


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.nested_misses", description=__doc__)
    p.add_argument("--model", required=True, help="a span head's export folder")
    p.add_argument("--data", required=True, type=Path, help="a folder with train.jsonl and dev.jsonl")
    args = p.parse_args(argv)
    predictor = NerPredictor.from_pretrained(args.model)
    head, readings = predictor.opened.head, []
    if head.name != "span":
        raise SystemExit(f"--model {args.model}: a {head.name} head's export; this reads a span head's span scores")
    decode = head.decode
    head.decode = lambda reading, *rest: readings.append(reading) or decode(reading, *rest)  # keep the span logits
    seen, labelled = inner_labelled(*read(args.data / "train.jsonl"))
    words, gold = read(args.data / "dev.jsonl")
    decoded = predictor.word_tags(words)
    rows = {True: [], False: []}
    for tokens, entities, found, reading in zip(words, gold, decoded, readings):
        kept = {(e.type, e.start, e.end) for e in found.entities}
        logits = {(s, e): x for s, e, x in reading["spans"]}
        for entity in (e for e in entities if inside(e, entities)):
            text = " ".join(tokens[entity[1] : entity[2]])
            x = logits.get(entity[1:])
            none = float(softmax(x.astype(np.float64)[None])[0, 0]) if x is not None else float("nan")
            rows[entity in kept].append((entity[0], text, seen[text], labelled[text], none))
    print("| dev entities inside another | n | never inside an entity in train | labelled where inside (pooled) | "
          "P(no entity), median |\n|---|---:|---:|---:|---:|")  # fmt: skip
    for found, name in ((True, "found"), (False, "missed")):
        r = rows[found]
        inside_train = [x for x in r if x[2]]
        share = sum(x[3] for x in inside_train) / max(1, sum(x[2] for x in inside_train))
        print(f"| {name} | {len(r)} | {len(r) - len(inside_train)} | {share:.0%} | "
              f"{np.median([x[4] for x in r]) if r else float('nan'):.2f} |")
    print("\nmissed:")
    for type_, text, n_seen, n_labelled, none in sorted(rows[False]):
        print(f"  {type_:10} {text!r}: inside an entity {n_seen}x in train, labelled {n_labelled}x; P(no entity) {none:.2f}")


if __name__ == "__main__":
    main()
