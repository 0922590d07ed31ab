"""The Python API (lit_ner/__init__.py): `from lit_ner import NerPredictor, train, evaluate, compose_config, Entity`,
`import lit_ner` without the training stack, and the README's "Python API" block run as written, in a fresh process,
on a small corpus of CoNLL files with the packaged MiniLM."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environment = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                          env=environment | env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_import_lit_ner_loads_no_training_stack(tmp_path: Path) -> None:
    code = "import sys, lit_ner; print(sorted({m.split('.')[0] for m in sys.modules} & {MODULES}))"
    heavy = {"torch", "lightning", "transformers", "hydra", "datasets"}
    assert python(code.replace("{MODULES}", repr(heavy)), tmp_path).stdout.strip() == "[]"


@pytest.mark.parametrize("first", ["", "import lit_ner.train, lit_ner.evaluate"])
def test_the_api_names_import_whatever_was_imported_before(first: str, tmp_path: Path) -> None:
    # importing the submodule lit_ner.train binds its name in the package: train must stay callable either way
    code = f"""{first}
from lit_ner import Entity, NerPredictor, compose_config, evaluate, train
import lit_ner.train
assert callable(train) and callable(evaluate) and lit_ner.train is train and lit_ner.train.main
assert NerPredictor.__module__ == "lit_ner.predictor" and "score" in Entity.__annotations__
assert compose_config("train", ["experiment=local", "data.path=x"]).data.path == "x"
"""
    python(code, tmp_path)


def readme_python_block() -> str:
    section = re.search(r"^## Python API\n(.*?)^## ", README.read_text(encoding="utf-8"), flags=re.S | re.M)[1]
    return re.search(r"^```python\n(.*?)^```", section, flags=re.S | re.M)[1]


def write_corpus(folder: Path) -> None:
    """CoNLL split files of the sentences the README tags, as a user would have them."""
    folder.mkdir()
    names = ["alan walker", "anna smith", "john mary", "peter paris"]
    for split, count in (("train", 24), ("dev", 8), ("test", 8)):
        lines = []
        for n in range(count):
            first, last = names[n % len(names)].split()
            lines += [f"{first} B-AUTHOR", f"{last} I-AUTHOR", "wrote O", "it O", "in O", f"{1900 + n} B-DATE", ". O", ""]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.slow
def test_the_readmes_python_api_block_runs_as_written(tmp_path: Path) -> None:
    write_corpus(tmp_path / "my_corpus")
    done = python(readme_python_block(), tmp_path, HOME=str(tmp_path))  # HOME: the data cache goes there
    [model] = (tmp_path / "outputs" / "local").glob("*/model")  # train's own run folder
    assert (model / "model.safetensors").is_file() and list((tmp_path / "outputs" / "evaluate").glob("*/report.json"))
    f1, entities = done.stdout.strip().splitlines()[-2:]
    assert 0.0 <= float(f1) <= 1.0
    assert entities.startswith("[") and all(key in entities for key in ("'text'", "'type'", "'start'")) or entities == "[]"
