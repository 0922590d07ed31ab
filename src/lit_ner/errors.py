"""The errors lit_ner raises for bad input, and how every entry point reports them: one line on standard error,
`lit_ner: error: ...`, exit status 2 (as argparse does). Each message names the file and line or the config key."""

import errno
import re
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn


class DataError(ValueError):
    """Bad or unreadable NER data (a file, a line, a tag, a split)."""


class ConfigError(ValueError):
    """A configuration value that cannot work (a key, a path, a model)."""


class RunError(RuntimeError):
    """A run that cannot go on and says why: its loss diverged, or the disk is full."""


# the errors an entry point reports in one line (anything else is a defect, shown with its traceback)
REPORTED = (DataError, ConfigError, RunError)
NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def gigabytes(size: float) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"


@contextmanager
def space_for(what: str, folder: Path, needed: int | None, then: str) -> Iterator[None]:
    """Around a write of about `needed` bytes (None: not known beforehand) into `folder`: a full disk or quota
    (ENOSPC, EDQUOT) becomes one RunError that names the folder, the size and `then`, what to do once there is room."""
    try:
        yield
    except OSError as err:
        # pyarrow (datasets' writer) raises an OSError without errno: its message is all there is
        if err.errno not in NO_SPACE and not any(m in str(err) for m in ("No space left", "Disk quota exceeded")):
            raise
        try:
            free = f"{gigabytes(shutil.disk_usage(folder).free)} free there now"
        except OSError:
            free = "free space unknown"
        size = "" if needed is None else f"it needs about {gigabytes(needed)}, "
        raise RunError(
            f"no space left on the disk to write {what} in {folder} ({err.strerror or err}): {size}{free}. Free some "
            f"space, then {then}"
        ) from err


def needs_extra(extra: str) -> str:
    """How to install one of lit_ner's extras: lit_ner comes from a clone or a wheel file, not the package index."""
    return f"pip install -e '.[{extra}]' in the clone, or pip install '<lit_ner wheel file>[{extra}]'"


def exit_with(err: Exception) -> NoReturn:
    """Bad input is the user's to fix, not a bug to debug: one line on stderr, exit status 2."""
    print(f"lit_ner: error: {err}", file=sys.stderr)
    sys.exit(2)


@contextmanager
def reported() -> Iterator[None]:
    """Around an entry point's work: a DataError, ConfigError or RunError ends the command by `exit_with`."""
    try:
        yield
    except REPORTED as err:
        exit_with(err)


def key_values(
    argv: Sequence[str], allowed: Mapping[str, str], required: Sequence[str], usage: str, about: str
) -> dict[str, str]:
    """The `key=value` arguments of the commands that are not Hydra apps (predict, serve, push, export_onnx): an
    argument that is no `key=value` of `allowed` (option -> what it means), or a missing `required` key, stops with
    the usage line; `--help` or `-h` prints the usage, `about` (what the command does, examples) and the options, and
    exits with status 0, as argparse and the Hydra commands do."""
    if "--help" in argv or "-h" in argv:
        print(help_text(allowed, required, usage, about))
        sys.exit(0)
    unknown = [arg for arg in argv if "=" not in arg or arg.partition("=")[0] not in allowed]
    args = dict(arg.partition("=")[::2] for arg in argv)
    missing = [key for key in required if key not in args]
    if unknown or missing:
        problem = f"unknown argument {unknown[0]!r}" if unknown else f"give {' and '.join(k + '=' for k in required)}"
        raise ConfigError(f"{problem}\n{usage}")
    return args


def help_text(allowed: Mapping[str, str], required: Sequence[str], usage: str, about: str) -> str:
    """The usage line, what the command does, then one line per option in the usage's order, each with the values
    the usage shows for it (`backend=torch|onnx`, `port=8000`), whether it is required, and what it means."""

    def shown(key: str) -> re.Match[str] | None:
        return re.search(rf"(?<![\w.]){re.escape(key)}=(\"[^\"]*\"|<[^>]*>|[^\s\])]*)", usage)

    keys = sorted(allowed, key=lambda k: (m.start() if (m := shown(k)) else len(usage), k))
    forms = {key: m[0] if (m := shown(key)) else f"{key}=..." for key in keys}
    width = max(map(len, forms.values()), default=0)
    lines = [f"  {forms[key]:<{width}}  {'required: ' if key in required else ''}{allowed[key]}" for key in keys]
    return "\n".join([usage, "", about.strip(), "", "options (key=value, in any order):", *lines])


def true_or_false(args: dict[str, str], key: str) -> bool | None:
    """A `key=true|false` argument of `key_values`' result as a boolean, None when not given."""
    if key not in args:
        return None
    if args[key] not in ("true", "false"):
        raise ConfigError(f"{key}={args[key]}: give true or false")
    return args[key] == "true"
