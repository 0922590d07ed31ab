"""Every console command of pyproject.toml answers `--help` with its options and exit status 0: the Hydra apps with
Hydra's help, the `key=value` commands with their usage and one line per option. A command added to
`[project.scripts]` is covered without touching this file."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
SCRIPTS = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]


def run_script(target: str, *argv: str) -> subprocess.CompletedProcess:
    """What the installed console script does (`module:function` called with argv), without needing the install
    to be newer than pyproject.toml."""
    module, function = target.split(":")
    code = f"import sys; from {module} import {function}; sys.exit({function}())"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_command_answers_help_with_its_options(script: str) -> None:
    done = run_script(SCRIPTS[script], "--help")
    assert done.returncode == 0, f"{script} --help exited {done.returncode}: {done.stderr[-2000:]}"
    if "Powered by Hydra" in done.stdout:
        # Hydra's own help lists the config groups to choose from, the model among them
        assert "== Configuration groups ==" in done.stdout and "model:" in done.stdout, done.stdout
    else:
        assert done.stdout.startswith("usage: python -m lit_ner."), done.stdout
        assert "options (key=value" in done.stdout and "  model=<" in done.stdout, done.stdout


def test_short_help_wins_over_other_arguments_and_a_bad_argument_still_fails() -> None:
    target = SCRIPTS["lit-ner-push"]
    done = run_script(target, "repo_id=user/name", "-h")  # model= missing, yet help is answered
    assert done.returncode == 0, done.stderr
    assert ["repo_id=<user/name>", "required"] in [line.split() for line in done.stdout.splitlines()], done.stdout
    done = run_script(target, "--hepl")
    assert done.returncode == 2 and "unknown argument '--hepl'" in done.stderr
