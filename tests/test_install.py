"""lit_ner installed from its wheel, not from this checkout: `python -m build` makes a wheel and an sdist that twine
accepts (make dist); the wheel installs into a fresh environment with its dependencies; the configs travel inside the
package, so training and prediction run from an empty folder, and a user's own config folder composes with the
shipped configs."""

import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lit_ner.data.datamodule import NerDataModule

REPO = Path(__file__).resolve().parents[1]


def run(command: list[str], cwd: Path, site: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """`command` with only the installed copy of lit_ner in front of the environment's packages."""
    env = os.environ | {"PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel `make dist` builds (`python -m build`: the wheel from the sdist, so the sdist must hold
    everything), from a copy of the sources (a build in the checkout could pick up stale build/ files)."""
    root = tmp_path_factory.mktemp("dist")
    source = root / "source"
    for folder in ("src", "conf"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for file in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / file, source / file)
    # --no-isolation: the build backend of the dev extra, no download (the Makefile builds so too)
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(root / "dist"), str(source)], root, root)
    return root / "dist"


@pytest.fixture(scope="module")
def site(dist: Path) -> Path:
    """The wheel installed into a folder of its own."""
    [wheel] = dist.glob("lit_ner-*.whl")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    run([*pip, "install", "--no-deps", "--no-index", "--target", str(dist.parent / "site"), str(wheel)], dist, dist)
    return dist.parent / "site"


def test_make_dist_builds_a_wheel_and_an_sdist_that_twine_accepts(dist: Path) -> None:
    files = sorted(p.name for p in dist.iterdir())
    assert files == ["lit_ner-0.2.0-py3-none-any.whl", "lit_ner-0.2.0.tar.gz"], files
    done = run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())], dist, dist)
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_the_wheel_ships_every_config(site: Path) -> None:
    shipped = {p.relative_to(site / "lit_ner" / "conf") for p in (site / "lit_ner" / "conf").rglob("*.yaml")}
    assert shipped == {p.relative_to(REPO / "conf") for p in (REPO / "conf").rglob("*.yaml")}
    assert (site / "bin" / "lit-ner-train").is_file() and (site / "bin" / "lit-ner-predict").is_file()


@pytest.mark.slow
def test_the_installed_package_trains_and_predicts_from_an_empty_folder(
    site: Path, tiny_model: Path, tmp_path: Path
) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    where = run([sys.executable, "-c", "import lit_ner, lit_ner.conf; print(lit_ner.__file__, lit_ner.conf.__file__)"],
                work, site).stdout.split()  # fmt: skip
    assert all(Path(f).is_relative_to(site) for f in where), where  # not this checkout, not an editable install
    overrides = [f"model.model_name_or_path={tiny_model}", f"data.cache_dir={tmp_path / 'cache'}",
                 "data.synthetic_size=100", "demo_sentences=[]"]  # fmt: skip
    run([sys.executable, "-m", "lit_ner.train", "debug=fast", *overrides], work, site)
    [model] = (work / "outputs" / "quickstart").glob("*/model")  # the default run folder, under the working folder
    assert (model / "model.safetensors").is_file()
    text = "alan walker wrote the book in 1940"
    done = run([sys.executable, "-m", "lit_ner.predict", f"model={model}", f"text={text}"], work, site)
    assert json.loads(done.stdout)["text"] == text and "entities" in json.loads(done.stdout)
    done = run([str(site / "bin" / "lit-ner-predict"), f"model={model}", f"text={text}"], work, site)
    assert json.loads(done.stdout)["text"] == text


@pytest.mark.parametrize("how", ["--config-dir", "hydra.searchpath"])
def test_a_user_config_folder_composes_with_the_shipped_configs(site: Path, tmp_path: Path, how: str) -> None:
    mine = tmp_path / "my_configs"
    (mine / "experiment").mkdir(parents=True)
    (mine / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /data: local\n\nmodel:\n  lr: 3.0e-4\n"
    )
    add = ["--config-dir", str(mine)] if how == "--config-dir" else [f"hydra.searchpath=[file://{mine}]"]
    command = [sys.executable, "-m", "lit_ner.train", *add, "experiment=mine", "data.path=corpus/", "--cfg", "job"]
    done = run(command, tmp_path, site)
    composed = done.stdout
    assert "lr: 0.0003" in composed and "path: corpus/" in composed and "hub_name: null" in composed, composed
    assert "_target_: lit_ner.data.NerDataModule" in composed and "_target_: lit_ner.module.NerModule" in composed
    # every NerDataModule argument is a key the installed package's configs show (and an override can reach)
    arguments = list(inspect.signature(NerDataModule.__init__).parameters)[1:]
    assert set(OmegaConf.create(composed).data) == {"_target_", *arguments}


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_environment_and_trains(dist: Path, tiny_model: Path, tmp_path: Path) -> None:
    """As the README says to install it: torch first (the CPU build; lit_ner's torch>=2.4 would take any), then the
    wheel, whose metadata brings every other dependency; then the console scripts and the quickstart's first step."""
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"HF_HUB_OFFLINE": "1"}

    def fresh(command: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
        done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    fresh([sys.executable, "-m", "venv", str(venv)], tmp_path)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", "install"]
    fresh([*pip, "torch==2.13.0"], tmp_path, timeout=900)
    [wheel] = dist.glob("lit_ner-*.whl")
    fresh([*pip, str(wheel)], tmp_path, timeout=1200)
    usage = fresh([str(venv / "bin" / "lit-ner-train"), "--help"], tmp_path).stdout
    assert usage.startswith("usage: python -m lit_ner.train"), usage
    work = tmp_path / "empty"
    work.mkdir()
    overrides = [f"model.model_name_or_path={tiny_model}", f"data.cache_dir={tmp_path / 'cache'}",
                 "data.synthetic_size=100", "demo_sentences=[]"]  # fmt: skip
    fresh([str(venv / "bin" / "lit-ner-train"), "debug=fast", *overrides], work, timeout=600)
    [model] = (work / "outputs" / "quickstart").glob("*/model")
    assert (model / "model.safetensors").is_file() and (model / "config.json").is_file()
