"""The errors lit_ner raises for bad input, and how every entry point reports them: one line on standard error,
`lit_ner: error: ...`, exit status 2 (as argparse does). Each message names the file and line or the config key."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn


class DataError(ValueError):
    """Bad or unreadable NER data (a file, a line, a tag, a split)."""


class ConfigError(ValueError):
    """A configuration value that cannot work (a key, a path, a model)."""


def exit_with(err: Exception) -> NoReturn:
    """Bad input is the user's to fix, not a bug to debug: one line on stderr, exit status 2."""
    print(f"lit_ner: error: {err}", file=sys.stderr)
    sys.exit(2)


@contextmanager
def reported() -> Iterator[None]:
    """Around an entry point's work: a DataError or ConfigError ends the command by `exit_with`."""
    try:
        yield
    except (ConfigError, DataError) as err:
        exit_with(err)
