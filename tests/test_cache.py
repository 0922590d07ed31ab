"""The encoded-data cache: keyed by the content of the data files, never destroyed by another run, whole or absent
(a truncated meta.json counts as absent), the leftovers of killed runs removed, a full disk one line."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lit_ner.data import NerDataModule
from lit_ner.errors import ConfigError, DataError


def write_conll(path: Path, sentences: list[list[tuple[str, str]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in sentences) + "\n")
    return path


BASE = [("alan", "B-PER"), ("walker", "I-PER"), ("wrote", "O"), ("in", "O"), ("london", "B-LOC")]


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    write_conll(folder / "train.txt", [BASE, BASE[:3], BASE[2:]] * 4)
    write_conll(folder / "dev.txt", [BASE, BASE[2:]])
    return folder


def make(tiny_model: Path, folder: Path, cache_dir: Path, **kwargs) -> NerDataModule:
    return NerDataModule(str(tiny_model), path=str(folder), cache_dir=str(cache_dir), max_length=32, **kwargs)


def entries(cache_dir: Path) -> list[str]:
    """What the cache folder holds besides the file-content hashes it remembers."""
    return sorted(p.name for p in cache_dir.iterdir() if p.name != "file-hashes.json")


# ---- a run removes only what it made itself


def test_a_failing_run_never_deletes_the_cache_another_run_wrote(
    tiny_model: Path, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two sweep jobs start together on a cache folder that does not exist yet: the one that made the folder fails
    on its data while the other has finished its cache in it. The finished cache stays, and serves the next run."""
    cache_dir = tmp_path / "fresh_cache"
    bad = tmp_path / "bad" / "train.txt"
    bad.parent.mkdir()
    bad.write_text("alan B-PER\nwalker I-PER\n\nparis B-LOC\nfrance NNP I-LOC\n")  # 3 columns where 2 were
    failing, finishing = make(tiny_model, bad.parent, cache_dir), make(tiny_model, data, cache_dir)
    read = NerDataModule.words_from_source

    def the_other_finishes_meanwhile(self: NerDataModule, scratch: Path | None = None):
        if self is failing:
            finishing.prepare_data()
        return read(self, scratch)

    monkeypatch.setattr(NerDataModule, "words_from_source", the_other_finishes_meanwhile)
    with pytest.raises(DataError, match="3 columns where the first token line has 2"):
        failing.prepare_data()
    monkeypatch.undo()
    assert entries(cache_dir) == [finishing.cache_path.name]  # the failed run's scratch is gone, nothing else
    again = make(tiny_model, data, cache_dir)
    again.prepare_data()
    again.setup("fit")
    assert again.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"] and len(again.datasets["train"]) == 12


# ---- the key: the files' content


def test_an_edit_that_keeps_size_and_time_gives_a_new_cache_entry(
    tiny_model: Path, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key hashes what the files hold. The hashes are remembered by each file's size, times and inode, so an
    unchanged file is not read again; an edit that restores the size and the modification time (os.utime) still
    changes the inode's change time, which no program can set back: it is read again and gives a new entry."""
    import hashlib

    train = data / "train.txt"
    time.sleep(2.1)  # a file changed within the last two seconds is hashed again each run, not remembered
    cache_dir = tmp_path / "cache"
    first = make(tiny_model, data, cache_dir)
    first.prepare_data()
    remembered = json.loads((cache_dir / "file-hashes.json").read_text())
    assert str(train.resolve()) in remembered

    digest, reads = hashlib.file_digest, []
    monkeypatch.setattr(hashlib, "file_digest", lambda f, name: reads.append(f.name) or digest(f, name))
    assert make(tiny_model, data, cache_dir).cache_path == first.cache_path and reads == []  # not read again

    stat = train.stat()
    text = train.read_text()
    train.write_text(text.replace("london B-LOC", "london B-ORG"))  # the same size
    os.utime(train, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same modification time
    assert (train.stat().st_size, train.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    edited = make(tiny_model, data, cache_dir)
    assert edited.cache_path != first.cache_path and str(train) in reads
    edited.prepare_data()
    assert "B-ORG" in edited.labels and "B-ORG" not in first.labels


def test_extra_train_files_join_the_train_split_alone_and_key_the_cache_by_their_content(
    tiny_model: Path, data: Path, tmp_path: Path
) -> None:
    """data.extra_train: more training sentences (a teacher's tags, in distillation), after the source's own; a
    changed file is a new cache entry, a missing one stops before any work."""
    extra = tmp_path / "extra" / "more.jsonl"
    extra.parent.mkdir()
    sentence = {"tokens": ["mary", "smith", "wrote", "in", "paris"], "tags": ["B-PER", "I-PER", "O", "O", "B-LOC"]}
    extra.write_text(json.dumps(sentence) + "\n")
    cache_dir = tmp_path / "cache"
    alone, added = make(tiny_model, data, cache_dir), make(tiny_model, data, cache_dir, extra_train=[str(extra)])
    for datamodule in (alone, added):
        datamodule.prepare_data()
    assert added.cache_path != alone.cache_path
    before, after = alone.cached_words(), added.cached_words()
    assert list(after["train"]["tokens"]) == list(before["train"]["tokens"]) + [sentence["tokens"]]
    assert after["train"][-1]["tags"] == sentence["tags"]
    assert after["train"][-1]["document"] > max(before["train"]["document"])  # a document of its own
    assert list(after["validation"]["tokens"]) == list(before["validation"]["tokens"])

    extra.write_text(json.dumps(sentence | {"tags": ["B-PER", "I-PER", "O", "O", "B-ORG"]}) + "\n")
    changed = make(tiny_model, data, cache_dir, extra_train=[str(extra)])
    assert changed.cache_path != added.cache_path
    changed.prepare_data()
    assert "B-ORG" in changed.labels
    with pytest.raises(ConfigError, match=f"data.extra_train: {tmp_path / 'gone.jsonl'} is not a file"):
        make(tiny_model, data, cache_dir, extra_train=[str(tmp_path / "gone.jsonl")])


# ---- whole or absent


def test_a_truncated_meta_json_counts_as_absent(tiny_model: Path, data: Path, tmp_path: Path) -> None:
    """meta.json is written last and flushed to disk; one cut short (a disk error, a power cut on another
    writer) makes the entry absent: the next run prepares it again instead of failing on it every time."""
    first = make(tiny_model, data, tmp_path / "cache")
    first.prepare_data()
    meta = first.cache_path / "meta.json"
    meta.write_bytes(meta.read_bytes()[: meta.stat().st_size // 2])
    again = make(tiny_model, data, tmp_path / "cache")
    again.prepare_data()
    again.setup("fit")
    assert again.labels == first.labels and json.loads(meta.read_text())["labels"] == first.labels
    assert entries(tmp_path / "cache") == [first.cache_path.name]


# Run in a child process: prepare the data, but stop inside, with the scratch folder made, until GO exists.
PAUSED = r"""
import sys, time
from pathlib import Path
from lit_ner.data import NerDataModule

tiny, data, cache_dir, marker, go = sys.argv[1:]
prepare = NerDataModule._prepare

def paused(self, target, scratch):
    Path(marker).write_text(str(scratch))
    while not Path(go).exists():
        time.sleep(0.05)
    prepare(self, target, scratch)

NerDataModule._prepare = paused
NerDataModule(tokenizer_name_or_path=tiny, path=data, cache_dir=cache_dir, max_length=32).prepare_data()
"""


def test_a_run_removes_the_leftovers_of_killed_runs_and_never_those_of_a_running_one(
    tiny_model: Path, data: Path, tmp_path: Path
) -> None:
    """Two runs are inside their preparation; one is killed (SIGKILL: nothing of it can clean up). The next run
    removes the killed run's scratch folder, keeps the running one's, and the running one then finishes."""
    cache_dir = tmp_path / "cache"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    go = tmp_path / "go"

    def start(name: str) -> tuple[subprocess.Popen, Path]:
        marker = tmp_path / name
        args = [str(tiny_model), str(data), str(cache_dir), str(marker), str(go)]
        process = subprocess.Popen([sys.executable, "-c", PAUSED, *args], env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), process.communicate()[1][-3000:] if process.poll() is not None else "no start"
        return process, Path(marker.read_text())

    running, running_scratch = start("running")
    killed, killed_scratch = start("killed")
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed_scratch.is_dir() and running_scratch.is_dir()

    make(tiny_model, data, cache_dir).prepare_data()
    assert not killed_scratch.exists() and running_scratch.is_dir()

    go.write_text("")
    assert running.wait(timeout=120) == 0, running.stderr.read()[-3000:]
    assert entries(cache_dir) == [make(tiny_model, data, cache_dir).cache_path.name]


# ---- a full disk


def in_a_small_disk(folder: Path, kib: int, command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`command` run with `folder` a tmpfs of `kib` KiB, in a mount namespace of its own (unshare maps the user to
    root there, so no privilege is needed where user namespaces are allowed); then what the folder holds is printed,
    as `LEFT:` and one name a line. Skips where this system allows no such namespace."""
    mount = f'mount -t tmpfs -o size={kib}k tmpfs "$0"'
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", mount, str(folder)],
                           capture_output=True, text=True) if shutil.which("unshare") else None  # fmt: skip
    if probe is None or probe.returncode != 0:
        pytest.skip(f"no tmpfs of our own here (unshare --user --mount): {probe.stderr if probe else 'no unshare'}")
    script = f'{mount} && "$@"; status=$?; echo LEFT:; ls -A "$0"; exit $status'
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    namespace = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, str(folder)]
    return subprocess.run([*namespace, *command], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.mark.parametrize("kib, while_", [(192, "streaming"), (1024, "tokenizing")])
def test_a_disk_that_fills_while_preparing_the_data_stops_with_one_line(
    kib: int, while_: str, tiny_model: Path, tmp_path: Path
) -> None:
    """The cache folder is a real 192 KiB or 1 MiB file system: the CoNLL files' words (about 0.7 MB of Arrow)
    fill the first while they stream in, the tokenized rows (1.3 MB more) the second. Either way the command ends
    with one line naming the folder and what to do, and leaves nothing in it."""
    words = "alan walker wrote the book in london paris john mary smith".split()
    tags = {"alan": "B-PER", "john": "B-PER", "mary": "B-PER", "london": "B-LOC", "paris": "B-LOC"}
    sentences = [[(words[(i * 7 + j * 3) % 11], "") for j in range(5 + i % 11)] for i in range(4000)]
    sentences = [[(w, tags.get(w, "O")) for w, _ in s] for s in sentences]
    write_conll(tmp_path / "data" / "train.txt", sentences)
    write_conll(tmp_path / "data" / "dev.txt", sentences[:200])
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    command = [sys.executable, "-m", "lit_ner.train", f"run_dir={tmp_path / 'run'}", "data=local",
               f"data.path={tmp_path / 'data'}", f"data.cache_dir={cache_dir}", "data.max_length=64",
               f"model.model_name_or_path={tiny_model}", "trainer.max_epochs=1", "demo_sentences=[]"]  # fmt: skip
    done = in_a_small_disk(cache_dir, kib, command, tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("lit_ner: error: ")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert f"no space left on the disk to write the encoded data cache in {cache_dir}" in errors[0]
    assert "data.cache_dir to a folder on a disk with room" in errors[0]
    assert done.stdout.split("LEFT:")[-1].split() == []
