"""Where a model named in a setting is: an existing local folder, or a Hub name, with one set of messages. Below
every other lit_ner module but `errors`: the data side (tokenizers) and the model side (weights) both ask it."""

from pathlib import Path

from lit_ner.errors import ConfigError

# what every "no such folder" message ends with, unless the command knows better what to give
WHAT_TO_GIVE = (
    "Give a folder holding config.json and tokenizer files (an export: <run>/model), or a Hub name when the Hub "
    "is reachable (model=minilm is the encoder that ships with lit_ner)."
)


def local_or_hub(name_or_path: str, key: str, what_to_give: str = WHAT_TO_GIVE) -> str:
    """`name_or_path` as transformers should read it: an existing folder as its expanded path (transformers reads
    "~/..." as a Hub name), anything else unchanged, as a Hub name.

    Stops with `key=value` and `what_to_give` for a file, a folder without config.json, and a path that does not
    exist but cannot be a Hub name either: absolute, starting with . or ~, or with more than one / (a Hub name is
    owner/model at most), so a mistyped relative path says "no such folder", not the Hub's rules for names.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{key}={name_or_path}: the folder has no config.json. {what_to_give}")
        return str(path)
    if path.exists():
        raise ConfigError(f"{key}={name_or_path}: not a folder. {what_to_give}")
    if path.is_absolute() or name_or_path.startswith((".", "~")) or name_or_path.count("/") > 1:
        raise ConfigError(f"{key}={name_or_path}: no such folder. {what_to_give}")
    return name_or_path
