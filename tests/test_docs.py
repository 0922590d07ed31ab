"""The docs cannot drift from the code: docs/reference.md lists every setting the Hydra commands compose with its
default and every option the `key=value` commands' `--help` prints, names every config file and places every module;
every command, console script, make target, config choice and local link the README and docs/ quote exists; and the
docs speak of the product (no tracker numbers, machine paths or notes to colleagues)."""

import importlib
import importlib.util
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from omegaconf import OmegaConf

from lit_ner.app import compose_config

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference.md"
DOCS = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")])
GROUPS = ("experiment", "data", "model", "head", "trainer", "callbacks", "logger", "preset", "debug", "hparams_search")
# choices that add keys the default job does not compose; the reference lists those keys too
VARIANTS = (["callbacks=early_stopping"], ["logger=csv"], ["logger=mlflow"], ["logger=wandb"], ["trainer=ddp"],
            ["trainer=ddp_cpu"], ["trainer=gpu"], ["debug=fast"], ["preset=gpu"], ["head=crf"], ["head=span"])  # fmt: skip
KEY_VALUE_COMMANDS = ("predict", "serve", "export_onnx", "push")


def sections(text: str) -> dict[str, str]:
    """The text under each `## ` heading, by heading."""
    parts = re.split(r"^## +(.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def table_rows(text: str) -> list[list[str]]:
    """The cells of every table row, header and separator rows left out."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|[-:| ]+\|", line.strip()):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if cells and cells[0] not in ("key", "option", "command", "group"):
                rows.append(cells)
    return rows


def documented_defaults(section: str) -> dict[str, Any]:
    """`key` -> its default as written (`` `value` ``, read as YAML) in the key tables of a section."""
    found = {}
    for cells in table_rows(section):
        key, default = re.fullmatch(r"`([^`]+)`", cells[0]), re.fullmatch(r"`([^`]*)`", cells[1])
        if key and default and "=" not in key[1]:
            found[key[1]] = yaml.safe_load(default[1])
    return found


def leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """A composed config as dotted keys -> values (lists are values)."""
    if isinstance(node, dict) and node:
        return {k: v for key, value in node.items() for k, v in leaves(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def composed(config: str, overrides: list[str] | None = None) -> dict[str, Any]:
    return leaves(OmegaConf.to_container(compose_config(config, overrides or []), resolve=False))


def same(a: Any, b: Any) -> bool:
    """Equal, and a boolean only equals a boolean (True == 1 in Python)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


@pytest.fixture(scope="module")
def reference() -> dict[str, str]:
    return sections(REFERENCE.read_text(encoding="utf-8"))


def test_reference_lists_every_training_key_with_its_default(reference: dict[str, str]) -> None:
    documented = documented_defaults(reference["python -m lit_ner.train"])
    expected = composed("train")
    for overrides in VARIANTS:
        expected |= {k: v for k, v in composed("train", overrides).items() if k not in expected}
    missing = sorted(set(expected) - set(documented))
    assert not missing, f"docs/reference.md lacks these keys of `python -m lit_ner.train --cfg job`: {missing}"
    wrong = {k: (documented[k], expected[k]) for k in expected if not same(documented[k], expected[k])}
    assert not wrong, f"docs/reference.md's default (documented, composed) differs: {wrong}"
    stale = sorted(set(documented) - set(expected))
    assert not stale, f"docs/reference.md lists keys no config composes: {stale}"


def test_reference_lists_every_evaluate_and_inspect_key(reference: dict[str, str]) -> None:
    training = documented_defaults(reference["python -m lit_ner.train"])
    own = documented_defaults(reference["python -m lit_ner.evaluate"])
    keys = composed("evaluate")
    for key, value in keys.items():
        where = own if key in own or not key.startswith("data.") else training
        assert key in where, f"docs/reference.md: evaluate's {key} is neither in its table nor in training's data"
        assert same(where[key], value), f"docs/reference.md: evaluate's {key} is {value!r}, documented {where[key]!r}"
    assert not set(own) - set(keys), f"documented for evaluate, not composed: {sorted(set(own) - set(keys))}"
    for key, value in composed("inspect").items():  # inspect: training's data, model and seed
        assert key in training and same(training[key], value), f"inspect's {key}={value!r} is not training's"


# what the reference says a data key's null means, and what NerDataModule does with null: a row may not drift
NULL_MEANS = {
    "data.eval_batch_size": ("(`null`: twice `batch_size`)", "eval_batch_size", lambda dm: 2 * dm.hparams.batch_size),
}


@pytest.mark.parametrize("key", NULL_MEANS)
def test_reference_says_what_null_does(key: str, reference: dict[str, str]) -> None:
    from lit_ner.data.datamodule import NerDataModule

    said, attribute, expected = NULL_MEANS[key]
    meaning = {cells[0]: cells[2] for cells in table_rows(reference["python -m lit_ner.train"])}[f"`{key}`"]
    assert said in meaning, f"docs/reference.md, {key}: {meaning!r} does not say {said!r}"
    datamodule = NerDataModule(tokenizer_name_or_path="unused", synthetic="books", batch_size=16)
    assert datamodule.hparams[key.removeprefix("data.")] is None  # the default is the null the row explains
    assert getattr(datamodule, attribute) == expected(datamodule), f"{key}=null no longer does what the row says"


@pytest.mark.parametrize("command", KEY_VALUE_COMMANDS)
def test_reference_lists_every_option_help_prints(command: str, reference: dict[str, str], capsys) -> None:
    module = importlib.import_module(f"lit_ner.{command}")
    with pytest.raises(SystemExit) as exited:
        module.main(["--help"])
    assert exited.value.code in (0, None)
    shown = capsys.readouterr().out.split("options (key=value, in any order):")[1]
    options = {line.split("=")[0].strip() for line in shown.splitlines() if line.strip()}
    rows = table_rows(reference[f"python -m lit_ner.{command}"])
    documented = {m[1] for cells in rows if (m := re.fullmatch(r"`(\w+)=`", cells[0]))}
    assert documented == options, f"{command}: --help prints {sorted(options)}, docs/reference.md {sorted(documented)}"


def test_reference_names_every_config_of_each_group(reference: dict[str, str]) -> None:
    rows = {cells[0].strip("`"): cells[1] for cells in table_rows(reference["Config groups"])}
    for group in GROUPS:
        shipped = {p.stem for p in (ROOT / "conf" / group).glob("*.yaml") if not p.stem.startswith("_")}
        assert group in rows, f"docs/reference.md: no row for the config group {group}"
        assert set(re.findall(r"`([\w-]+)`", rows[group])) == shipped, f"{group}: conf/{group}/ has {sorted(shipped)}"


def layout_paths(block: str) -> set[str]:
    """The files and folders of a layout block, from its names' indentation (descriptions are further right)."""
    paths, stack = set(), []
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip())
        name = line.strip().split(" ")[0] if line.strip() else ""
        if indent > 4 or not (name.endswith("/") or name.endswith(".py")):
            continue
        stack = [(i, n) for i, n in stack if i < indent]
        path = "".join(n for _, n in stack) + name
        paths.add(path)
        if name.endswith("/"):
            stack.append((indent, name))
    return paths


def test_reference_layout_places_every_module(reference: dict[str, str]) -> None:
    block = re.search(r"```\n(.*?)```", reference["Layout"], flags=re.S)[1]
    documented = {p for p in layout_paths(block) if p.endswith(".py")}
    modules = {str(p.relative_to(ROOT)) for p in [*(ROOT / "src").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]}
    missing = sorted(m for m in modules - documented if not m.endswith("__init__.py"))
    assert not missing, f"docs/reference.md's layout does not place: {missing}"
    assert not documented - modules, f"docs/reference.md's layout names missing files: {sorted(documented - modules)}"


def code_of(text: str) -> str:
    """The fenced blocks and inline code spans of a markdown text: where commands are quoted."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    rest = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    return "\n".join([*fenced, *re.findall(r"`([^`\n]+)`", rest)])


@pytest.mark.parametrize("doc", [d for d in DOCS if d.name != "CHANGELOG.md"], ids=lambda p: str(p.relative_to(ROOT)))
def test_quoted_commands_exist(doc: Path) -> None:  # the CHANGELOG also names what no longer exists
    code = code_of(doc.read_text(encoding="utf-8"))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    for module in set(re.findall(r"\bpython3? -m ([A-Za-z_][\w.]*\w)", code)):
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:  # its package is missing
            spec = None
        assert spec is not None, f"{doc.name} quotes python -m {module}: no such module"
    for script in set(re.findall(r"\b(lit-ner-[a-z-]*[a-z])", code)):
        assert script in scripts, f"{doc.name} quotes {script}: not a console script of pyproject.toml"
    for target in set(re.findall(r"(?:^|[\s;(&])make ([a-z][\w-]*)", code)):
        assert target in targets, f"{doc.name} quotes make {target}: no such Makefile target"
    # --config-dir: your configs; an error line quotes the wrong input it refuses
    ours = [line for line in code.splitlines() if "--config-dir" not in line and "lit_ner: error:" not in line]
    shipped_only = "\n".join(ours)
    choices = rf"(?<![\w.+/])({'|'.join(GROUPS)})=(\[[a-z0-9_,]+\]|[a-z0-9_][\w-]*)(?![\w/.<>-])"
    for group, value in re.findall(choices, shipped_only):
        for choice in value.strip("[]").split(","):
            if group == "model" and not re.fullmatch(r"[a-z0-9_]+", choice):
                continue  # model= also takes a Hub name or a folder
            assert (ROOT / "conf" / group / f"{choice}.yaml").is_file(), f"{doc.name}: {group}={choice} is no config"


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ +(.+)$", re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_local_links_resolve(doc: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = doc.parent / path if path else doc
        assert file.exists(), f"{doc.name} links to {target}: no such file"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file.read_text(encoding="utf-8")), f"{doc.name} links to {target}: no heading"


PROCESS_WORDS = [
    r"\b[Ii]ssues? \d+",  # tracker numbers
    r"\bworkplace\b",
    r"\bscratch\b",
    r"\.\./shared\b|/work/",  # one machine's paths
    r"(?:^|[.;:(]\s+|\s)I (?:believe|think|measured|ran|found|tried|will|am)\b|\bwe measured\b",
    r"\bthis (?:session|stop)\b",
]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_speak_of_the_product(doc: Path) -> None:
    lines = doc.read_text(encoding="utf-8").splitlines()
    found = [f"{doc.name}:{n}: {line.strip()[:100]}" for n, line in enumerate(lines, 1)
             if any(re.search(p, line) for p in PROCESS_WORDS)]  # fmt: skip
    assert not found, "words about how the work was done, not about the product:\n" + "\n".join(found)


# ---- figures quoted in several places: one measurement, one scope


def test_the_quickstart_is_described_as_its_config_runs_it() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [row] = [cells for cells in table_rows(sections(readme)["Results"]) if cells[0].startswith("quickstart")]
    cfg = compose_config("train")
    sentences, epochs = re.search(r"([\d,]+) generated book sentences, MiniLM, (\d+) epochs", row[0]).groups()
    assert int(sentences.replace(",", "")) == cfg.data.synthetic_size and int(epochs) == cfg.trainer.max_epochs, row
    # the time: measured once (Results), rounded the same wherever it is quoted
    seconds = int(re.search(r"(\d+) s for the whole command", row[3])[1])
    quoted = {
        "README.md": readme.split("\n## ")[0],
        "conf/experiment/quickstart.yaml": (ROOT / "conf" / "experiment" / "quickstart.yaml").read_text(),
        "notebooks/01_quickstart.ipynb": (ROOT / "notebooks" / "01_quickstart.ipynb").read_text(encoding="utf-8"),
    }
    for where, text in quoted.items():
        minutes = re.findall(r"about (\d+(?:\.\d+)?) min", " ".join(text.split()))
        assert minutes, f"{where} does not say how long the quickstart takes"
        assert all(abs(float(m) - seconds / 60) <= 0.5 for m in minutes), f"{where}: {minutes} min, measured {seconds} s"


def test_the_readmes_quality_figures_are_the_measured_ones() -> None:
    results = sections((ROOT / "README.md").read_text(encoding="utf-8"))["Results"]
    quality = (ROOT / "docs" / "quality.md").read_text(encoding="utf-8")
    figures = re.findall(r"0\.\d{4} ± 0\.\d{4}", results)
    assert len(figures) >= 4, results
    for figure in figures:  # each mean ± std over seeds is a row of docs/quality.md, where its method is
        assert figure in quality, f"README quotes {figure}: not in docs/quality.md"
