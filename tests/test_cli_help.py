"""Every console command of pyproject.toml answers `--help` with exit status 0 and one page: its usage, what it does,
examples, and its options or main settings, each with its meaning; the Hydra commands with the config groups they
read (lit_ner's own templates, conf/hydra/help/, not Hydra's stock page). A command added to `[project.scripts]` is
covered without touching this file."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lit_ner.app import compose_config

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
SCRIPTS = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]
HYDRA_COMMANDS = {"train": ["experiment", "data", "model", "head", "preset", "trainer"], "evaluate": ["data", "model"],
                  "inspect": ["data", "model"], "active": ["data", "model", "head", "trainer"]}  # fmt: skip
# a setting or option line: two spaces, key=VALUE (VALUE may be <a placeholder with spaces>), its meaning
SETTING = re.compile(r"  ([\w.]+)=(\"[^\"]*\"|<[^>]*>|\S+)\s{2,}(\S.*)")


def run_script(target: str, *argv: str) -> subprocess.CompletedProcess:
    """What the installed console script does (`module:function` called with argv), without needing the install
    to be newer than pyproject.toml."""
    module, function = target.split(":")
    code = f"import sys; from {module} import {function}; sys.exit({function}())"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=300)


def blocks(page: str) -> dict[str, list[str]]:
    """The page's blocks by their first line (`examples:`, `config groups (...)`): the lines under it."""
    found = {}
    for block in page.strip().split("\n\n"):
        first, *rest = block.splitlines()
        found[first] = rest
    return found


def settings_block(page: str) -> list[str]:
    return next(lines for head, lines in blocks(page).items() if head.startswith(("main settings", "options (key")))


@pytest.fixture(scope="module", params=sorted(SCRIPTS))
def page(request: pytest.FixtureRequest) -> tuple[str, str]:
    done = run_script(SCRIPTS[request.param], "--help")
    assert done.returncode == 0, f"{request.param} --help exited {done.returncode}: {done.stderr[-2000:]}"
    return SCRIPTS[request.param].split(":")[0].removeprefix("lit_ner."), done.stdout


def test_help_says_what_the_command_does_with_examples(page: tuple[str, str]) -> None:
    command, text = page
    assert text.startswith(f"usage: python -m lit_ner.{command} "), text
    assert "Hydra (https://hydra.cc)" not in text and "powered by Hydra" not in text.lower(), text
    about = list(blocks(text))[1]  # the paragraph after the usage line
    assert len(about) > 60 and not about.startswith(("examples", "options", "config groups")), text
    examples = blocks(text)["examples:"]
    assert 2 <= len(examples) <= 3 and all(line.startswith(("  python -m lit_ner.", "  curl ")) for line in examples)
    assert any(f"python -m lit_ner.{command}" in line for line in examples), examples


def test_every_option_or_setting_shown_is_described(page: tuple[str, str]) -> None:
    command, text = page
    lines = settings_block(text)
    assert len(lines) >= 2, text
    for line in lines:
        match = SETTING.fullmatch(line)
        assert match and len(match[3]) > 8, f"{command} --help: no meaning given on {line!r}"
    if command in HYDRA_COMMANDS:  # every key shown is one the command composes (or Hydra's run folder)
        keys = {"model", *(leaf for leaf in dotted(OmegaConf.to_container(compose_config(command), resolve=False)))}
        for line in lines:
            key = SETTING.fullmatch(line)[1]
            assert key in keys or key.startswith("hydra."), f"{command} --help shows {key}=, which it does not compose"


def dotted(node: object, prefix: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [k for key, value in node.items() for k in dotted(value, f"{prefix}{key}.")]
    return [prefix[:-1]]


@pytest.mark.parametrize("command", sorted(HYDRA_COMMANDS))
def test_hydra_commands_list_the_groups_they_read_and_no_internal_configs(command: str) -> None:
    done = run_script(f"lit_ner.{command}:main", "--help")
    groups = next(lines for head, lines in blocks(done.stdout).items() if head.startswith("config groups"))
    named = [line.split()[0] for line in groups if not line.startswith("    ")]
    assert named == HYDRA_COMMANDS[command], groups  # evaluate and inspect: data and model, nothing they ignore
    assert not re.search(r"\b_(arguments|base)\b", done.stdout), done.stdout  # what the data configs start from
    assert "books, btc, conll2003, local, textminr, wikiann" in done.stdout


def test_hydra_help_shows_this_command_lines_values() -> None:
    done = run_script("lit_ner.train:main", "experiment=wikiann", "--help")
    assert "now wikiann" in done.stdout and "training sentences a batch; now 16" in done.stdout, done.stdout


def test_short_help_wins_over_other_arguments_and_a_bad_argument_still_fails() -> None:
    target = SCRIPTS["lit-ner-push"]
    done = run_script(target, "repo_id=user/name", "-h")  # model= missing, yet help is answered
    assert done.returncode == 0, done.stderr
    assert ["repo_id=<user/name>", "required:"] in [line.split()[:2] for line in done.stdout.splitlines()], done.stdout
    done = run_script(target, "--hepl")
    assert done.returncode == 2 and "unknown argument '--hepl'" in done.stderr
