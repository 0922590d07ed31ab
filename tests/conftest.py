"""Shared fixtures: a tiny BERT built from a config with a WordPiece vocabulary written here (offline, CPU, fast), the
training config on it, and the shared datasets where this machine has them."""

import os
import string
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, open_dict

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# the maintainers' copies of real corpora beside the clone; LIT_NER_DATASETS points at a folder of your own copies
SHARED = Path(os.environ.get("LIT_NER_DATASETS") or Path(__file__).resolve().parents[2] / "shared" / "datasets")
SHARED = SHARED.expanduser()
WORDS = """the a of in and to was by is his her book novel wrote written published painted first
author poem story city new york london paris berlin john mary smith walker alan anna
peter company university river meeting said today germany france""".split()


def build_tiny_model(folder: Path, max_positions: int = 128) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = string.ascii_lowercase + string.digits + string.punctuation
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars), *WORDS]
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tokenizer = BertTokenizer(vocab=str(vocab_file), do_lower_case=True, model_max_length=max_positions)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)  # the same tiny weights in every session
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=max_positions,
    )  # fmt: skip
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def shared_dataset() -> Callable[[str], Path]:
    """`shared_dataset("conll2003")`: that folder of SHARED; the test skips where it is absent."""

    def find(name: str) -> Path:
        path = SHARED / name
        if not path.exists():
            pytest.skip(f"the shared dataset {path} is not present on this machine")
        return path

    return find


def compose_train(run_dir: Path, tiny_model: Path, cache: Path, *overrides: str, size: int | None = 160) -> DictConfig:
    """What `python -m lit_ner.train run_dir=... <overrides>` composes, on the tiny model and a small book corpus
    (`size` sentences; None keeps the experiment's data), two epochs, with nothing left that reads `hydra:`."""
    from lit_ner.app import compose_config

    cfg = compose_config(
        "train",
        [
            f"run_dir={run_dir}",
            f"model.model_name_or_path={tiny_model}",
            f"data.cache_dir={cache}",
            "data.batch_size=16",
            "trainer.max_epochs=2",
            "trainer.enable_model_summary=false",
            "demo_sentences=[]",
            *([f"data.synthetic_size={size}"] if size else []),
            *overrides,
        ],
    )
    with open_dict(cfg):
        cfg.hydra = None  # everything that read hydra: is overridden above
    return cfg


@pytest.fixture(scope="session")
def make_cfg() -> Callable[..., DictConfig]:
    """`make_cfg(run_dir, tiny_model, cache, *overrides, size=160)`: see `compose_train`."""
    return compose_train
