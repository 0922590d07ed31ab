"""Publishing on the Hugging Face Hub (`hub.repo_id=` in training, `python -m lit_ner.push`): refused before any
work where the upload cannot happen, given to huggingface_hub's own API with the export folder and a model card whose
metadata the Hub reads, and never at the cost of the trained model when it fails. No network: HfApi's two calls are
replaced by recorders."""

from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import HfApi, ModelCard

from lit_ner.errors import ConfigError
from lit_ner.push import main as push_main
from lit_ner.train import train


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine with network and a token (the test environment is offline and has none)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict]]:
    """HfApi.create_repo and upload_folder, recorded instead of sent."""
    calls: list[tuple[str, dict]] = []

    def create_repo(self: HfApi, repo_id: str, **kwargs: object) -> str:
        calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self: HfApi, **kwargs: object) -> None:
        folder = Path(str(kwargs["folder_path"]))
        calls.append(("upload_folder", kwargs | {"files": sorted(p.name for p in folder.iterdir())}))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_offline_or_tokenless_training_with_a_repo_stops_before_any_work(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub, make_cfg
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match=r"hub.repo_id=me/ner, but the Hugging Face Hub is in offline mode .*"
                       r"python -m lit_ner.push model=<run>/model repo_id=me/ner"):  # fmt: skip
        train(make_cfg(tmp_path / "run", tiny_model, tmp_path / "cache", "hub.repo_id=me/ner"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no_token"))
    with pytest.raises(ConfigError, match="there is no Hugging Face token"):
        train(make_cfg(tmp_path / "run", tiny_model, tmp_path / "cache", "hub.repo_id=me/ner"))
    assert not (tmp_path / "run" / "checkpoints").exists() and hub == []


def test_a_finished_run_uploads_its_export_with_a_card_the_hub_reads(
    tiny_model: Path, tmp_path: Path, online, hub, make_cfg
) -> None:
    run = tmp_path / "run"
    result = train(make_cfg(run, tiny_model, tmp_path / "cache", "hub.repo_id=me/ner", "hub.private=true"))
    assert result["hub"] == "https://huggingface.co/me/ner"
    (create, created), (upload, uploaded) = hub
    assert (create, created["repo_id"], created["private"], created["exist_ok"]) == ("create_repo", "me/ner", True, True)
    assert upload == "upload_folder" and uploaded["repo_id"] == "me/ner" and uploaded["folder_path"] == str(run / "model")
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json"} <= set(uploaded["files"])

    card = ModelCard.load(run / "model" / "README.md")  # the Hub's own parser of the metadata block
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "token-classification"
    assert card.data.model_name == "me/ner"
    f1 = next(r for r in card.data.eval_results if r.metric_type == "f1")
    assert f1.task_type == "token-classification" and f1.dataset_split == "test"
    assert f1.metric_value == pytest.approx(result["scores"]["test/f1"], abs=1e-4)
    assert "lit_ner 0." in card.text and "| AUTHOR |" in card.text  # the version, the scores per type


def test_a_failed_upload_keeps_the_model_and_says_how_to_retry(
    tiny_model: Path, tmp_path: Path, online, monkeypatch: pytest.MonkeyPatch, make_cfg, caplog
) -> None:
    def unreachable(self: HfApi, *args: object, **kwargs: object) -> None:
        raise ConnectionError("huggingface.co unreachable")

    monkeypatch.setattr(HfApi, "create_repo", unreachable)
    run = tmp_path / "run"
    result = train(make_cfg(run, tiny_model, tmp_path / "cache", "hub.repo_id=me/ner"))
    retry = f"python -m lit_ner.push model={run / 'model'} repo_id=me/ner"
    assert result["hub"] == f"upload failed; retry: {retry}"
    assert (run / "model" / "model.safetensors").exists() and (run / "metrics.json").exists()
    assert "huggingface.co unreachable" in caplog.text and retry in caplog.text


def test_push_command_uploads_an_existing_export(
    tiny_model: Path, tmp_path: Path, online, hub, capsys: pytest.CaptureFixture, make_cfg
) -> None:
    folder = Path(train(make_cfg(tmp_path / "run", tiny_model, tmp_path / "cache", "test=false"))["export"])
    push_main([f"model={folder}", "repo_id=me/ner", "private=false"])
    assert [c for c, _ in hub] == ["create_repo", "upload_folder"] and hub[0][1]["private"] is False
    assert "uploaded" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stopped:
        push_main([f"model={tmp_path}", "repo_id=me/ner"])  # not an export
    assert stopped.value.code == 2 and "not an exported model folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        push_main([f"model={folder}", "repo_id=me/ner", "private=yes"])
    assert stopped.value.code == 2 and "private=yes: give true or false" in capsys.readouterr().err
    assert len(hub) == 2  # nothing more was uploaded
