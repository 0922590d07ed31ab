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


def main(argv: Sequence[str] | None = None) -> None:
    with reported():
        argv = sys.argv[1:] if argv is None else argv
        args = key_values(argv, ("model", "repo_id", "private"), ("model", "repo_id"), USAGE)
        private = true_or_false(args, "private")
        blocker = upload_blocker()
        if blocker:
            raise ConfigError(f"cannot upload to {args['repo_id']}: {blocker}")
        url = push(Path(args["model"]).expanduser(), args["repo_id"], private)
        print(f"uploaded {args['model']} to {url}")


if __name__ == "__main__":
    main()
