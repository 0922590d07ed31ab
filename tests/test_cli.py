"""lit_ner.cli in-process: the checks of a composed config (a key or value type its class does not take, a value left
???, a key added with + that nothing reads), and that no shipped config trips them. The command lines themselves, as
subprocesses: tests/test_bad_input.py."""

from importlib import resources
from typing import Literal

import pytest

from lit_ner.app import compose_config
from lit_ner.cli import check_config, compose_run, fits
from lit_ner.errors import ConfigError

EXPERIMENTS = sorted(f.name[: -len(".yaml")] for f in resources.files("lit_ner.conf").joinpath("experiment").iterdir())
CHOICES = ["head=crf", "head=span", "trainer=ddp", "trainer=gpu", "preset=gpu", "logger=csv", "logger=mlflow",
           "logger=wandb", "logger=tensorboard_csv", "callbacks=early_stopping", "debug=fast"]  # fmt: skip


def test_values_fit_the_plain_types_of_an_annotation() -> None:
    assert fits(3, int) and fits(3, float) and fits(0.5, float | None) and fits(None, int)
    assert not fits("three", int | None) and not fits(True, int) and not fits("fast", float)
    assert fits(True, bool) and not fits("maybe", bool) and not fits(1, bool)
    assert fits(["O", "B-PER"], list[str]) and not fits([1], list[str]) and not fits("O", list[str])
    assert fits({"train": ["a.conll"]}, dict[str, list[str]]) and not fits({"train": "a.conll"}, dict[str, list[str]])
    assert fits("bf16-mixed", Literal[16, "bf16-mixed"]) and not fits([16], Literal[16, "bf16-mixed"])
    assert fits("anything", type("AClass", (), {}))  # a class is its constructor's to judge
    assert fits({"_target_": "x.Y"}, int)  # a node that builds an object: checked on its own


@pytest.mark.parametrize(
    ("config", "overrides", "says"),
    [
        ("train", ["+data.bach_size=64"], "data.bach_size: lit_ner.data.NerDataModule takes no such setting; did you "
                                          "mean data.batch_size?"),
        ("train", ["+callbacks.progress_bar.refresh=5"], "callbacks.progress_bar.refresh: "
                                                         "lightning.pytorch.callbacks.TQDMProgressBar takes no such"),
        ("train", ["trainer.max_epochs=three"], "trainer.max_epochs='three': expected a whole number (or null)"),
        ("train", ["model.lr=fast"], "model.lr='fast': expected a number"),
        ("train", ["data.labels=O"], "data.labels='O': expected a list, [a,b] (or null)"),
        ("evaluate", [], "model.model_name_or_path has no value: give model=<run>/model"),
    ],
)
def test_a_bad_setting_is_named_with_what_to_give(config: str, overrides: list[str], says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_config(compose_config(config, overrides))
    assert says in str(raised.value)


def test_a_key_added_with_a_plus_must_be_read_by_something() -> None:
    cfg = compose_config("train", ["+seeed=3", "+trainer.overfit_batches=2", "debug=fast"])
    with pytest.raises(ConfigError, match=r"\+seeed: lit_ner reads no such setting; did you mean seed\?"):
        check_config(cfg, ["+seeed=3", "+trainer.overfit_batches=2", "+debug=fast"], {"debug"})
    check_config(cfg, ["+trainer.overfit_batches=2", "+debug=fast"], {"debug"})  # a Trainer argument, a group


@pytest.mark.parametrize("overrides", [[f"experiment={e}"] for e in EXPERIMENTS] + [[c] for c in CHOICES])
def test_every_shipped_config_passes_the_checks(overrides: list[str]) -> None:
    check_config(compose_config("train", [*overrides, "data.path=corpus/"]))


def test_evaluate_and_inspect_configs_pass_the_checks() -> None:
    check_config(compose_config("evaluate", ["model.model_name_or_path=m"]))
    check_config(compose_config("evaluate", ["model=minilm", "data=local", "data.path=corpus/"]))
    check_config(compose_config("inspect", ["data=local", "data.path=corpus/"]))


def test_in_process_runs_go_where_the_command_puts_them() -> None:
    cfg = compose_run("train", ["experiment=local", "data.path=corpus/"], "run_dir")
    assert cfg.run_dir.startswith("outputs/local/") and "hydra" not in cfg
    assert compose_run("train", ["run_dir=mine", "data.path=corpus/"], "run_dir").run_dir == "mine"
    evaluation = compose_run("evaluate", ["model.model_name_or_path=m"], "output_dir")
    assert evaluation.output_dir.startswith("outputs/evaluate/")
    with pytest.raises(ConfigError, match="trainer.max_epochs='three'"):  # checked as the command checks it
        compose_run("train", ["trainer.max_epochs=three"], "run_dir")
