"""`python -m lit_ner.push model=<export> repo_id=<user/name> [private=true|false]`: publish an exported model folder
(weights, tokenizer, config, model card) on the Hugging Face Hub through huggingface_hub. Training does the same at
the end of a successful run with `hub.repo_id=...`. The token is huggingface_hub's own: HF_TOKEN, or a saved login
(`hf auth login`)."""

import sys
from collections.abc import Sequence
from pathlib import Path

from lit_ner.errors import ConfigError, key_values, reported, true_or_false
from lit_ner.hub import push, upload_blocker

USAGE = "usage: python -m lit_ner.push model=<export folder> repo_id=<user/name> [private=true|false]"
ABOUT = """Publish an export (weights, tokenizer, config with its labels and reading, model card) on the Hugging Face
Hub; the token is huggingface_hub's own (HF_TOKEN, or hf auth login). Training does the same at its end with
hub.repo_id=<user/name>.

examples:
  python -m lit_ner.push model=outputs/quickstart/<run>/model repo_id=me/books-ner
  python -m lit_ner.push model=<run>/model repo_id=my-org/ner private=true"""
OPTIONS = {
    "model": "an export (<run>/model)",
    "repo_id": "the Hub repository, <user or org>/<name>",
    "private": "true or false, for a new repository (default: the Hub's)",
}


def main(argv: Sequence[str] | None = None) -> None:
    with reported():
        argv = sys.argv[1:] if argv is None else argv
        args = key_values(argv, OPTIONS, ("model", "repo_id"), USAGE, ABOUT)
        private = true_or_false(args, "private")
        blocker = upload_blocker()
        if blocker:
            raise ConfigError(f"cannot upload to {args['repo_id']}: {blocker}")
        url = push(Path(args["model"]).expanduser(), args["repo_id"], private)
        print(f"uploaded {args['model']} to {url}")


if __name__ == "__main__":
    main()
