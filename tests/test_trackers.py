"""MLflow and W&B through `logger=[tensorboard,mlflow]` / `logger=[tensorboard,wandb]`, offline, read back with the
libraries' own readers: hyper-parameters, scalars, test scores and the export's path; and a resumed run continues the
same tracker run."""

import json
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Callback

from lit_ner.train import train

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra: pip install -e '.[dev]'")
wandb = pytest.importorskip("wandb", reason="the wandb extra: pip install -e '.[dev]'")


class StopAfterFirstEpoch(Callback):
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.should_stop = True


def test_mlflow_records_the_run_and_a_resume_continues_it(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_cfg
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # wins over the config
    monkeypatch.chdir(tmp_path)  # MLflow keeps artifacts under ./mlruns for a SQLite store
    run = tmp_path / "run"
    first = make_cfg(run, tiny_model, tmp_path / "cache", "logger=[tensorboard,mlflow]", "test=false", "export=false")
    train(first, callbacks=[StopAfterFirstEpoch()])
    [run_id] = json.loads((run / "trackers.json").read_text()).values()

    again = [f"ckpt_path={run}", "logger=[tensorboard,mlflow]", "log_export=true"]
    train(make_cfg(tmp_path / "elsewhere", tiny_model, tmp_path / "cache", *again))
    [found] = mlflow.search_runs(experiment_names=["lit_ner"], output_format="list")  # one run, not two
    assert found.info.run_id == run_id
    data = found.data
    assert data.params["model.lr"] == "0.0001" and data.params["seed"] == "42"
    for key in ("val/f1", "test/f1", "test/f1_AUTHOR", "hp/test_f1", "hp/val_f1"):
        assert key in data.metrics, key
    history = mlflow.MlflowClient().get_metric_history(run_id, "val/f1")
    assert [m.step for m in history] == sorted({m.step for m in history}) and len(history) == 2  # both epochs
    assert data.tags["lit_ner.export"] == str(run / "model")
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "model")}
    assert "model/model.safetensors" in artifacts and "model/README.md" in artifacts


def wandb_records(path: Path):
    """The records of a W&B transaction log (.wandb): its 7-byte header, then LevelDB's log format (32 KiB blocks
    of chunks, each with a 7-byte header: checksum, little-endian length, type; full=1, first=2, middle=3,
    last=4), each record a protobuf `Record`."""
    from wandb.proto import wandb_internal_pb2

    data, pos, block, pending = path.read_bytes(), 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def read_wandb_run(folder: Path) -> tuple[str, set[str], dict[str, str]]:
    """(run id, history keys, summary) of one offline run folder."""
    run_id, history, summary = "", set(), {}
    for record in wandb_records(next(folder.glob("*.wandb"))):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run_id = record.run.run_id
        elif kind == "history":
            history |= {item.key or "/".join(item.nested_key) for item in record.history.item}
        elif kind == "summary":
            summary |= {item.key or "/".join(item.nested_key): item.value_json for item in record.summary.update}
    return run_id, history, summary


def test_wandb_offline_records_the_run_and_a_resume_continues_it(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_cfg
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))  # wins over the run folder
    (tmp_path / "wandb_dir").mkdir()
    run = tmp_path / "run"
    first = make_cfg(run, tiny_model, tmp_path / "cache", "logger=[tensorboard,wandb]", "test=false", "export=false")
    train(first, callbacks=[StopAfterFirstEpoch()])
    wandb.finish()  # what the end of the process does
    [run_id] = json.loads((run / "trackers.json").read_text()).values()

    train(make_cfg(tmp_path / "elsewhere", tiny_model, tmp_path / "cache", f"ckpt_path={run}", "logger=[tensorboard,wandb]"))
    wandb.finish()
    folders = sorted((tmp_path / "wandb_dir" / "wandb").glob("offline-run-*"))
    assert len(folders) == 2 and all(f.name.endswith(f"-{run_id}") for f in folders)  # `wandb sync` joins them
    (first_id, first_history, _), (second_id, history, summary) = map(read_wandb_run, folders)
    assert first_id == second_id == run_id
    assert "val/f1" in first_history and "val/f1" in history and "test/f1" in history
    assert json.loads(summary["export"]) == str(run / "model")
    assert json.loads(summary["hp/test_f1"]) == pytest.approx(json.loads(summary["test/f1"]))
