"""What the shipped configs compose to: each model config's lr reaches the run whatever experiment chose it, and the
data group's keys are NerDataModule's arguments with the code's defaults."""

import inspect
from importlib import resources

import pytest

from lit_ner.app import compose_config
from lit_ner.data.datamodule import NerDataModule

EXPERIMENTS = sorted(f.name[: -len(".yaml")] for f in resources.files("lit_ner.conf").joinpath("experiment").iterdir())


@pytest.mark.parametrize(
    ("overrides", "lr"),
    [
        (["experiment=conll2003"], 2e-5),  # bert-base-cased, the CoNLL-2003 recipe
        (["experiment=btc_frozen"], 5e-5),  # bert-base-cased, every layer frozen but the last
        (["experiment=wikiann"], 2e-5),  # distilbert-base-uncased, the tutorial's recipe
        (["experiment=conll2003", "model=minilm"], 1e-4),  # another encoder brings its own lr
        (["experiment=conll2003", "model.lr=3e-5"], 3e-5),  # and the command line still has the last word
    ],
)
def test_the_lr_is_the_chosen_model_configs(overrides: list[str], lr: float) -> None:
    assert compose_config("train", overrides).model.lr == lr


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_no_experiment_overrides_the_lr_of_another_model(experiment: str) -> None:
    # MiniLM learns with 1e-4; a bert-base lr of 2e-5 imposed on it ended short runs with F1 0
    minilm = compose_config("train", ["model=minilm"]).model
    assert compose_config("train", [f"experiment={experiment}", "model=minilm"]).model == minilm


def test_btc_frozen_trains_the_last_layer_only() -> None:
    model = compose_config("train", ["experiment=btc_frozen"]).model
    assert model.model_name_or_path == "bert-base-cased" and model.train_last_layers == 1


def test_the_data_keys_are_the_datamodules_arguments_with_its_defaults() -> None:
    data = compose_config("train", ["data=local", "data.path=corpus/"]).data
    parameters = list(inspect.signature(NerDataModule.__init__).parameters.values())[1:]
    assert set(data) == {"_target_"} | {p.name for p in parameters}
    set_by_the_configs = {"path": "corpus/", "tokenizer_name_or_path": "${model.model_name_or_path}", "seed": "${seed}"}
    for p in parameters:  # data=local sets only the path: every other value is the code's own default
        assert data._get_node(p.name)._value() == set_by_the_configs.get(p.name, p.default), p.name


def test_every_data_argument_is_overridden_without_a_plus() -> None:
    data = compose_config("train", ["experiment=conll2003", "data.max_tokens=4000", "data.pad_to_multiple_of=8"]).data
    assert data.max_tokens == 4000 and data.pad_to_multiple_of == 8
    assert data.hub_name == "eriktks/conll2003" and data.labels[0] == "O"  # the data config's own keys stay


def test_a_run_without_an_experiment_still_gets_a_run_folder(tmp_path) -> None:
    """`~experiment` (data and model chosen without a recipe) names its run folder outputs/no_experiment/<time>
    instead of failing on the experiment choice it removed (the run and the sweep folders both)."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "lit_ner.train", "~experiment", "data=local", "data.path=x", "--cfg", "hydra",
               "--resolve"]  # fmt: skip
    shown = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "dir: outputs/no_experiment/" in shown.stdout
