"""The export folder: a whole model in it at every moment, however a re-export ends (SIGKILL at any point), and a
model card that names no path of the machine that trained it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors import safe_open
from transformers import AutoTokenizer

from lit_ner.export import export_model
from lit_ner.module import NerModule

LABELS = ["O", "B-PER", "I-PER"]
# Run in a child process: export into the folder again and again, counting the exports done in the marker file.
EXPORTS = r"""
import sys
from pathlib import Path
from transformers import AutoTokenizer
from lit_ner.export import export_model
from lit_ner.module import NerModule

tiny, folder, marker = sys.argv[1:]
module, tokenizer = NerModule(tiny, ["O", "B-PER", "I-PER"]), AutoTokenizer.from_pretrained(tiny)
done = 0
while True:
    export_model(module, tokenizer, Path(folder), {}, {}, {})
    done += 1
    Path(marker).write_text(str(done))
"""
WHOLE = ("config.json", "model.safetensors", "tokenizer.json", "README.md")


def whole(folder: Path) -> bool:
    return all((folder / name).is_file() for name in WHOLE)


def assert_loads(folder: Path) -> None:
    assert json.loads((folder / "config.json").read_text())["id2label"] == {str(i): l for i, l in enumerate(LABELS)}
    with safe_open(folder / "model.safetensors", "pt") as weights:  # a truncated file fails here
        assert all(weights.get_tensor(key).numel() for key in weights.keys())
    AutoTokenizer.from_pretrained(folder)


@pytest.mark.slow
def test_a_killed_re_export_leaves_a_whole_model_at_every_moment(tiny_model: Path, tmp_path: Path) -> None:
    """A process exports into the same folder again and again while this one looks at the folder as fast as it can;
    the process is killed (SIGKILL) in the middle of writing, just after an export, and at a moment chosen by the
    clock. The folder is never seen without its files, loads after every kill, and the next export cleans up."""
    folder = tmp_path / "run" / "model"
    export_model(NerModule(str(tiny_model), LABELS), AutoTokenizer.from_pretrained(tiny_model), folder, {}, {}, {})
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    missing = 0
    for kill_when in ("writing", "exported", "clock"):
        marker = tmp_path / f"exports-{kill_when}"
        process = subprocess.Popen([sys.executable, "-c", EXPORTS, str(tiny_model), str(folder), str(marker)], env=env,
                                   stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline, started = time.monotonic() + 120, None
        while process.poll() is None and time.monotonic() < deadline:
            missing += not whole(folder)
            done = int(marker.read_text() or 0) if marker.exists() else 0
            started = started or (done and time.monotonic())
            writing = any("partial" in p.name for p in folder.parent.iterdir())
            if done >= 3 and {"writing": writing, "exported": not writing, "clock": True}[kill_when]:
                if kill_when != "clock" or time.monotonic() - started > 0.37:
                    break
        assert process.poll() is None, process.communicate()[1][-3000:]
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert missing == 0, f"the folder lacked a file {missing} times"
        assert_loads(folder)
    export_model(NerModule(str(tiny_model), LABELS), AutoTokenizer.from_pretrained(tiny_model), folder, {}, {}, {})
    assert sorted(p.name for p in folder.parent.iterdir()) == ["model"]  # the killed writes' leftovers are gone
    assert_loads(folder)


def test_the_model_card_names_no_local_path(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The card travels to the Hub (lit_ner.push): it names the data folder and the base model by their names,
    leaves the cache folder out, and keeps the command's settings without the paths in them."""
    corpus, cache = tmp_path / "my_corpus", tmp_path / "cache"
    corpus.mkdir()
    data = {"path": str(corpus), "cache_dir": str(cache), "tokenizer_name_or_path": str(tiny_model),
            "data_files": {"train": [str(corpus / "train.txt")]}, "max_length": 32}  # fmt: skip
    command = (f"python -m lit_ner.train data=local data.path={corpus} data.cache_dir={cache} model.lr=1e-4 "
               f"model.model_name_or_path={tiny_model} hydra.run.dir={tmp_path / 'run'} data.data_files="
               f"{{train: [{corpus / 'train.txt'}]}} data.path=~/corpus")  # fmt: skip
    meta = {"scheme": "IOB2", "train_scheme": "IOB2", "splits": {"train": {"sentences": 3}}}
    module, tokenizer = NerModule(str(tiny_model), LABELS), AutoTokenizer.from_pretrained(tiny_model)
    card = (export_model(module, tokenizer, tmp_path / "run" / "model", data, {}, meta, command=command) / "README.md")
    text = card.read_text()
    assert str(tmp_path) not in text and str(Path.home()) not in text and "~/" not in text
    assert "cache_dir" not in text and "cache" not in text.split("Hyper-parameters")[1]
    assert "**Data:** my_corpus" in text and f"fine-tuned from `{tiny_model.name}`" in text
    assert f"data=local data.path=my_corpus model.lr=1e-4 model.model_name_or_path={tiny_model.name}" in text
    assert "data.data_files={train: [train.txt]}" in text and "hydra.run.dir=run" in text
    assert '"path": "my_corpus"' in text and '"max_length": 32' in text
