"""`python -m lit_ner.inspect data=NAME` (or `lit-ner-inspect`): sentences, words, entities, tag scheme and sub-token lengths per split."""

from collections import Counter

import hydra
import numpy as np
from omegaconf import DictConfig

from lit_ner.data.encode import load_tokenizer
from lit_ner.data.formats import gold_entities
from lit_ner.data.schemes import nested_count
from lit_ner.app import CONFIG_PATH, build
from lit_ner.cli import check_config, hydra_refusals_reported
from lit_ner.errors import reported


def describe(datamodule) -> str:  # noqa: ANN001 (a NerDataModule; kept loose for notebooks)
    """A plain-text report of the data a NerDataModule would train on."""
    words = datamodule.words_from_source()
    meta = datamodule.meta
    tokenizer = load_tokenizer(datamodule.hparams.tokenizer_name_or_path)
    max_length = datamodule.hparams.max_length
    lines = [
        f"source tag scheme: {meta['scheme']} (trained as {meta['train_scheme']})",
        f"labels ({len(meta['labels'])}): {' '.join(meta['labels'])}",
        f"tokenizer: {datamodule.hparams.tokenizer_name_or_path}",
        *(f"warning: {warning}" for warning in meta.get("warnings", [])),
        "",
    ]
    for name, split in words.items():
        tags = list(split["tags"])
        gold = gold_entities(split)  # a nested source's every entity, else its tags
        entities = Counter(kind for sentence in gold for kind, _, _ in sentence)
        inside = sum(map(nested_count, gold))
        lengths = np.array([len(ids) for ids in tokenizer(list(split["tokens"]), is_split_into_words=True)["input_ids"]])
        p50, p90, p99 = np.percentile(lengths, [50, 90, 99]) if len(lengths) else (0, 0, 0)
        invalid = meta["invalid_transitions"][name]
        lines += [
            f"[{name}]",
            f"  sentences {len(split):>8}   words {sum(len(t) for t in tags):>9}",
            "  entities  " + "  ".join(f"{k} {v}" for k, v in sorted(entities.items())) + f"  (all {sum(entities.values())}"
            + (f", {inside} inside another: head=span reads them)" if inside else ")"),
            f"  invalid {meta['scheme']} transitions: {invalid['count']}"
            + (f"  e.g. {invalid['examples'][:3]}" if invalid["count"] else ""),
            f"  sub-tokens per sentence: p50 {p50:.0f}  p90 {p90:.0f}  p99 {p99:.0f}  max {lengths.max(initial=0)}",
            f"  sentences over max_length={max_length}: {int((lengths > max_length).sum())}"
            " (split into overlapping windows, never truncated)",
        ]
    return "\n".join(lines)


@hydra.main(config_path=CONFIG_PATH, config_name="inspect", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    with reported():
        check_config(cfg)
        print(describe(build(cfg.data, _convert_="all")))


def main() -> None:
    """`python -m lit_ner.inspect` and `lit-ner-inspect`."""
    with hydra_refusals_reported("inspect"):
        hydra_main()


if __name__ == "__main__":
    main()
