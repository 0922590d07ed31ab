"""Publishing an export on the Hugging Face Hub through huggingface_hub: whether an upload can work from here, the
upload, and what a failed upload at the end of training says. The token is huggingface_hub's own: HF_TOKEN, or a
saved login (`hf auth login`). Used by `lit_ner.push` and by training with `hub.repo_id=...`."""

import logging
from pathlib import Path

import lit_ner
from lit_ner.errors import ConfigError

log = logging.getLogger("lit_ner")


def upload_blocker() -> str | None:
    """Why an upload cannot work from here, where that can be known without the network: offline mode, no token."""
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        return "the Hugging Face Hub is in offline mode (HF_HUB_OFFLINE is set)"
    if get_token() is None:
        return "there is no Hugging Face token (set HF_TOKEN, or log in once with `hf auth login`)"
    return None


def check_upload(repo_id: str) -> None:
    """Training with hub.repo_id: stop before any work when the upload at the end could not happen."""
    blocker = upload_blocker()
    if blocker:
        raise ConfigError(
            f"hub.repo_id={repo_id}, but {blocker}: the upload at the end could not happen. Fix that, or train "
            "without hub.repo_id and upload the export later: "
            f"python -m lit_ner.push model=<run>/model repo_id={repo_id}"
        )


def upload_or_explain(folder: Path, repo_id: str, private: bool | None) -> str:
    """The end of a training run: upload the export; a failure (network, permissions) is logged with the command
    that retries it, and the run still ends well, since the trained model is on disk either way."""
    try:
        return push(folder, repo_id, private)
    except Exception as err:  # huggingface_hub raises network, HTTP and validation errors of many kinds
        retry = retry_command(folder, repo_id, private)
        log.error("the upload to %s failed (%s: %s); the model is in %s. Retry: %s", repo_id, type(err).__name__, err,
                  folder, retry)  # fmt: skip
        return f"upload failed; retry: {retry}"


def retry_command(folder: Path, repo_id: str, private: bool | None) -> str:
    flag = "" if private is None else f" private={str(private).lower()}"
    return f"python -m lit_ner.push model={folder} repo_id={repo_id}{flag}"


def push(folder: Path, repo_id: str, private: bool | None = None) -> str:
    """Create the model repository if needed and upload the folder as one commit; returns the repository's URL."""
    from huggingface_hub import HfApi

    if not (folder / "config.json").is_file():
        raise ConfigError(f"model={folder}: not an exported model folder (no config.json); give <run>/model")
    api = HfApi()
    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, repo_type="model",
        commit_message=f"Upload NER model trained with lit_ner {lit_ner.__version__}",
    )  # fmt: skip
    return str(url)
