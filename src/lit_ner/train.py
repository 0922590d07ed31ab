"""`python -m lit_ner.train experiment=NAME` (or `lit-ner-train`, or `lit_ner.train(...)` from Python): the command
line of the training recipe (lit_ner.training: seed, data, model, fit, test on the best checkpoint, export,
summarise)."""

import sys
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lit_ner.app import CONFIG_PATH
from lit_ner.cli import CallableModule, check_config, compose_run, hydra_refusals_reported, model_argument
from lit_ner.errors import REPORTED, exit_with
from lit_ner.sweeps import record_failed_run
from lit_ner.training import demo, train, zero_f1_advice  # noqa: F401  (lit_ner.train.train, as before)


def run(*overrides: str) -> dict[str, Any]:
    """`lit_ner.train("experiment=local", "data.path=my_corpus/")`: what `python -m lit_ner.train <overrides>` does,
    in this process, checked the same way (a bad setting raises ConfigError), in the same run folder
    (outputs/<experiment>/<date_time>, or run_dir=...). Returns what the run's metrics.json holds: `"export"` is the
    exported model's folder, `"best"` the best val/f1, `"scores"` every final score."""
    return train(compose_run("train", [model_argument(o, any_name=False) for o in overrides], "run_dir"))


@hydra.main(config_path=CONFIG_PATH, config_name="train", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float:
    """Returns the optimised metric, so Hydra sweepers (Optuna included) can use it."""
    sweeping = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        check_config(cfg)
        result = train(cfg)
    except Exception as err:
        if not sweeping and isinstance(err, REPORTED):
            exit_with(err)
        if not sweeping:
            raise
        record_failed_run(cfg.run_dir, err)  # one bad combination must not end the sweep
        return float("nan")
    score = result["best"]["value"]
    return float("nan") if score is None else score


def main() -> None:
    """`python -m lit_ner.train` and `lit-ner-train`; `model=<folder>` fine-tunes the model in that folder (an export
    or an encoder), as model.model_name_or_path=<folder> does."""
    sys.argv = [sys.argv[0], *(model_argument(arg, any_name=False) for arg in sys.argv[1:])]
    with hydra_refusals_reported("train"):
        hydra_main()


sys.modules[__name__].__class__ = CallableModule  # lit_ner.train(...) is run(...)

if __name__ == "__main__":
    main()
