"""The Hydra commands' command lines (train, evaluate, inspect): Hydra's refusals (a key no config has, a config
that does not exist, an argument it cannot parse) and lit_ner's checks of the composed config (a value left `???`, a
key or a value type its class does not take), each told in one line that names the key and the nearest valid one
(lit_ner.errors.exit_with). HYDRA_FULL_ERROR=1 shows Hydra's own message instead."""

import difflib
import inspect
import os
import re
import sys
import types
import typing
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException, OverrideParseException
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from lit_ner.app import CONFIG_MODULE, compose_config, shipped_config
from lit_ner.errors import REPORTED, ConfigError, exit_with

# what a value left `???` needs, in the words of the command line
MISSING = {
    "model.model_name_or_path": "give model=<run>/model (an export), a checkpoint or an encoder",
}


def model_argument(arg: str, any_name: bool) -> str:
    """`model=<path or name>` as `model.model_name_or_path=...` (conf/model is a config group: Hydra would look for
    conf/model/<path>.yaml); a name of one of its files (minilm) stays a group choice. `any_name`: every other value
    (a Hub name too, as evaluate takes it); else only a path that exists (train: fine-tune from that export or
    encoder), so that a misspelt config name is still refused, with the nearest one."""
    key, _, value = arg.partition("=")
    if key == "model" and not shipped_config("model", value) and (any_name or Path(value).expanduser().exists()):
        return f"model.model_name_or_path={value}"
    return arg


# ---- the same commands from Python: lit_ner.train(...), lit_ner.evaluate(...)


class CallableModule(types.ModuleType):
    """A command module that runs when called: `from lit_ner import train; train("data.path=...")` is
    `lit_ner.train.run(...)`. Importing a submodule binds its name in the package, which would replace a function
    `lit_ner.train` with the module `lit_ner.train`: so the module is what the name means, and calling it runs."""

    def __call__(self, *overrides: str) -> Any:
        return self.run(*overrides)


def compose_run(command: str, overrides: Sequence[str], folder_key: str) -> DictConfig:
    """The config `python -m lit_ner.<command> <overrides>` runs, checked as the command checks it, with its folder
    (`folder_key`: run_dir, output_dir) where the command puts it (hydra.run.dir) unless an override names one."""
    GlobalHydra.instance().clear()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        cfg = compose(command, overrides=list(overrides), return_hydra_config=True)
    task, groups = list(cfg.hydra.overrides.task), set(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        if not any(o.partition("=")[0] == folder_key for o in overrides):
            cfg[folder_key] = str(cfg.hydra.run.dir)
        del cfg["hydra"]  # nothing is left that reads hydra:
    check_config(cfg, task, groups)
    return cfg


# ---- the command line, before Hydra runs the command


@contextmanager
def hydra_refusals_reported(command: str) -> Iterator[None]:
    """Around a Hydra command: what Hydra refuses before the run starts ends it with one line and exit status 2."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":  # the curious asked for Hydra's whole message
        yield
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra then raises what it would print in several lines
    try:
        yield
    except (ConfigCompositionException, OverrideParseException) as err:
        exit_with(ConfigError(refusal(err, command, [a for a in sys.argv[1:] if not a.startswith("-")])))


def refusal(err: HydraException, command: str, argv: Sequence[str]) -> str:
    """Hydra's refusal of the command line `argv` in one line."""
    if isinstance(err, MissingConfigException) and err.options is not None:
        return unknown_choice(str(err.missing_cfg_file), list(err.options), command, argv)
    if isinstance(err, OverrideParseException):
        bad = next((arg for arg in argv if "=" in arg and not parses(arg)), "")
        reason = str(err).splitlines()[0]
        return f"cannot read the argument {bad!r} ({reason}): quote a value with spaces or brackets, key='...'"
    cause = err.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and cause.full_key:  # "Could not override 'x'"
        return unknown_key(str(cause.full_key), command, argv)
    added = re.match(r"Could not append to config. An item is already at '(.+?)'", str(err))
    if added:
        return f"+{added[1]}: {added[1]} is a setting already: set it without the +, {added[1]}=<value>"
    return f"{' '.join(str(err).split())} (HYDRA_FULL_ERROR=1 shows Hydra's own message)"


def parses(arg: str) -> bool:
    try:
        OverridesParser.create().parse_override(arg)
    except HydraException:
        return False
    return True


def unknown_choice(missing: str, options: list[str], command: str, argv: Sequence[str]) -> str:
    """`data=conl`: no conf/data/conl.yaml."""
    given = next((a.lstrip("+").partition("=") for a in argv if "/".join(a.lstrip("+").split("=", 1)) == missing), None)
    group, name = (given[0], given[2]) if given else missing.rsplit("/", 1)
    choices = [o for o in options if not o.startswith("_")]  # _base, _arguments: what the others start from
    close = difflib.get_close_matches(name, choices, n=1)
    what = "neither a model config nor a folder" if group == "model" and command == "train" else f"no {group} config"
    said = f"{group}={name}: {what}" + (f"; did you mean {group}={close[0]}?" if close else "")
    said += f" (the {group} configs: {', '.join(choices)})"
    if group == "model" and command == "train":
        said += "; a Hub name goes in model.model_name_or_path=<name>"
    return said


def unknown_key(key: str, command: str, argv: Sequence[str]) -> str:
    """`data.bach_size=64`: no config has that key."""
    others = [a for a in argv if "=" in a and a.lstrip("+~").partition("=")[0] != key]
    try:
        cfg = OmegaConf.to_container(compose_config(command, others), resolve=False)
    except (HydraException, OmegaConfBaseException):  # another bad argument, a sweep, your own configs
        cfg = OmegaConf.to_container(compose_config(command), resolve=False)
    parent, _, name = key.rpartition(".")
    node = lookup(cfg, parent)
    if isinstance(node, dict) and "_target_" in node and name in parameters(node["_target_"])[0]:
        value = next((a.partition("=")[2] for a in argv if a.partition("=")[0] == key), "...")
        return f"{key}: {node['_target_']} takes it, the config does not set it: add it with +{key}={value}"
    return f"{key}: no such setting{nearest(key, cfg)} (python -m lit_ner.{command} --cfg job prints them all)"


def nearest(key: str, cfg: dict[str, Any]) -> str:
    """`; did you mean data.batch_size?`: the closest key beside `key` (or, where its parent is no node either,
    anywhere), or ''."""
    parent, _, name = key.rpartition(".")
    node = lookup(cfg, parent)
    if isinstance(node, dict):
        names = [k for k in node if not str(k).startswith("_") and k != name]
        if isinstance(node.get("_target_"), str):
            names += [p for p in parameters(node["_target_"])[0] if p not in names]
        close = difflib.get_close_matches(name, names, n=1)
        return f"; did you mean {parent + '.' if parent else ''}{close[0]}?" if close else ""
    close = difflib.get_close_matches(key, [p for p in paths(cfg) if p != key], n=1)
    return f"; did you mean {close[0]}?" if close else ""


def lookup(cfg: Any, dotted: str) -> Any:
    for part in dotted.split(".") if dotted else []:
        cfg = cfg.get(part) if isinstance(cfg, dict) else None
    return cfg


def paths(node: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key of a config, inner nodes included."""
    if isinstance(node, dict):
        for key, value in node.items():
            if not str(key).startswith("_"):
                yield prefix + str(key)
                yield from paths(value, f"{prefix}{key}.")


# ---- the composed config, before any work


def check_config(cfg: DictConfig, overrides: Sequence[str] | None = None, groups: Collection[str] = ()) -> None:
    """Stop with a ConfigError on a value left `???`, a key added with `+` that nothing reads, or a key or value type
    the class a node builds (`_target_`) does not take: `+data.bach_size=64`, `trainer.max_epochs=three`.
    `overrides` and the config `groups` they may choose from: the Hydra job's unless given."""
    if overrides is None and HydraConfig.initialized():
        overrides, groups = HydraConfig.get().overrides.task, HydraConfig.get().runtime.choices
    missing = sorted(missing_keys(cfg))
    if missing:
        raise ConfigError(f"{missing[0]} has no value: {MISSING.get(missing[0], f'give {missing[0]}=<value>')}")
    plain = OmegaConf.to_container(cfg, resolve=False)
    for key in added_keys(overrides or (), groups):
        if not any(isinstance(node, dict) and "_target_" in node for node in nodes_along(plain, key)):
            raise ConfigError(f"+{key}: lit_ner reads no such setting{nearest(key, plain)}")
    for path, node in targets(cfg):
        check_target(path, node)


def missing_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """The keys left `???` (OmegaConf.missing_keys resolves interpolations on the way, and fails on one that leads
    to a missing value)."""
    for key in node.keys() if isinstance(node, DictConfig) else range(len(node)):
        child = node._get_node(key)
        if OmegaConf.is_config(child) and not child._is_none():
            yield from missing_keys(child, f"{prefix}{key}.")
        elif child._is_missing():
            yield f"{prefix}{key}"


def added_keys(overrides: Sequence[str], groups: Collection[str]) -> list[str]:
    """The keys `overrides` add with `+` (a group added so, `+logger=csv`, left out)."""
    parsed = [OverridesParser.create().parse_override(o) for o in overrides]
    return [o.key_or_group for o in parsed if o.is_add() and o.key_or_group not in groups]


def nodes_along(cfg: dict[str, Any], key: str) -> Iterator[Any]:
    """The nodes from the top to `key`, `key`'s own included."""
    parts = key.split(".")
    for n in range(1, len(parts) + 1):
        yield lookup(cfg, ".".join(parts[:n]))


def targets(node: Any, path: str = "") -> Iterator[tuple[str, DictConfig]]:
    """Every node that builds an object (has `_target_`), with its dotted path."""
    if isinstance(node, DictConfig) and "_target_" in node:
        yield path, node
    for key in node.keys() if isinstance(node, DictConfig) else range(len(node)):
        child = node._get_node(key)
        if OmegaConf.is_config(child) and not child._is_none():
            yield from targets(child, f"{path}.{key}" if path else str(key))


def parameters(target: str) -> tuple[dict[str, Any], bool]:
    """The keyword arguments `target` takes with their types (where they can be read), and whether it takes any
    other (**kwargs)."""
    try:
        obj = get_object(target)
    except Exception as err:  # noqa: BLE001 (whatever importing it raised)
        raise ConfigError(f"_target_={target}: cannot import it ({err})") from None
    function = inspect.unwrap(obj.__init__ if inspect.isclass(obj) else obj)
    signature = inspect.signature(obj)
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 (an annotation that names what its module does not import): the plain ones
        hints = {p.name: p.annotation for p in signature.parameters.values() if not isinstance(p.annotation, str)}
    named = {p.name: hints.get(p.name, Any) for p in signature.parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}  # fmt: skip
    return named, any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())


def check_target(path: str, node: DictConfig) -> None:
    """The keys of a node that builds `_target_` are arguments it takes, and their values have the types it takes."""
    named, more = parameters(node["_target_"])
    for key in node:
        if str(key).startswith("_"):  # _target_, _convert_, _partial_: Hydra's own
            continue
        where = f"{path}.{key}" if path else str(key)
        if key not in named and not more:
            close = difflib.get_close_matches(str(key), list(named), n=1)
            hint = f"; did you mean {path}.{close[0]}?" if close else ""
            raise ConfigError(f"{where}: {node['_target_']} takes no such setting{hint}")
        try:
            value = node[key]
            value = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        except OmegaConfBaseException as err:  # an interpolation this command does not resolve: judged where used
            cause = err.__cause__ or err.__context__
            if isinstance(cause, REPORTED):  # ${packaged_model:...} without its package
                raise cause from None
            continue
        if key in named and not fits(value, named[key]):
            raise ConfigError(f"{where}={value!r}: expected {expected(named[key])}")


def fits(value: Any, hint: Any) -> bool:
    """Whether a config value can be passed where `hint` is annotated: the plain types only (int, float, bool, str,
    lists, mappings); null always (it means "the default" or "off"), a node that builds an object always, and a
    class or a Literal's exact values are the constructor's to judge."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None or hint is Any or (isinstance(value, dict) and "_target_" in value):
        return True
    if hint is type(None):
        return False
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, a) for a in args)
    if origin is typing.Literal:
        return any(fits(value, type(a)) for a in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        return isinstance(value, int if hint is int else (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    container = origin or hint
    if container in (list, tuple, Sequence):
        return isinstance(value, list) and all(fits(v, args[0]) for v in value) if args else isinstance(value, list)
    if container in (dict, Mapping):
        return isinstance(value, dict) and (not args or all(fits(v, args[1]) for v in value.values()))
    return True


def expected(hint: Any) -> str:
    """`hint` in a user's words: `int | None` -> 'a whole number (or null)'."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds = list(dict.fromkeys(expected(a) for a in args if a is not type(None)))
        return " or ".join(kinds) + (" (or null)" if type(None) in args else "")
    if typing.get_origin(hint) is typing.Literal:
        return " or ".join(map(repr, args))
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    container = typing.get_origin(hint) or hint
    if container in (list, tuple, Sequence):
        return "a list, [a,b]"
    if container in (dict, Mapping):
        return "a mapping, {key: value}"
    return names.get(hint, getattr(hint, "__name__", str(hint)))
