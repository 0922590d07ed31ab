"""The notebooks run top to bottom on the tiny model, with their first (parameters) cell replaced."""

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = "lit-ner-tests"
SIZE = 120  # sentences of the built-in corpus


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A kernel that starts this interpreter (sys.executable), whatever `python3` names on this machine."""
    root = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(root / "kernels" / KERNEL)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(root))  # searched before the user's and the system's kernels
        yield KERNEL


def run_notebook(name: str, parameters: dict[str, object], folder: Path, kernel: str) -> nbformat.NotebookNode:
    """Execute a copy of the notebook in `folder`; the executed copy is saved there, to read when a test fails."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", []), f"{name}: the first code cell holds the parameters"
    first.source = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    try:
        client = NotebookClient(notebook, kernel_name=kernel, timeout=300, resources={"metadata": {"path": str(folder)}})
        client.execute()
    finally:
        nbformat.write(notebook, folder / name)
    return notebook


def outputs(notebook: nbformat.NotebookNode) -> tuple[str, set[str]]:
    """All text the cells printed or returned, and the MIME types of their rich outputs."""
    text, kinds = [], set()
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text.append(output.get("text", "") + output.get("data", {}).get("text/plain", ""))
            kinds |= set(output.get("data", {}))
    return "\n".join(text), kinds


@pytest.fixture(scope="module")
def quickstart(kernel: str, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("quickstart")
    overrides = [
        f"model.model_name_or_path={tiny_model}", f"data.cache_dir={root / 'cache'}", f"data.synthetic_size={SIZE}",
        "data.batch_size=16", "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
        "trainer.enable_model_summary=false", "demo_sentences=[]",
    ]  # fmt: skip
    notebook = run_notebook("01_quickstart.ipynb", {"RUN_DIR": str(root / "run"), "OVERRIDES": overrides}, root, kernel)
    return root, notebook


@pytest.mark.slow
def test_quickstart_trains_exports_and_tags(quickstart) -> None:
    root, notebook = quickstart
    run = root / "run"
    assert (run / "model" / "model.safetensors").exists() and (run / "model" / "config.json").exists()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "metrics.json").exists()
    text, _ = outputs(notebook)
    assert "TensorBoard logs:" in text

    # the tagging cell prints each text, then one `  TYPE 'entity text' (score)` line per entity it found; the
    # tiny model, two batches trained, tags at random: check what is printed, not which entities
    cell = next(c for c in notebook.cells if "NerPredictor.from_pretrained" in c.get("source", ""))
    printed = "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout").splitlines()
    texts = re.findall(r'^    "(.+)",$', cell.source, re.MULTILINE)
    assert len(texts) == 3 and [line for line in printed if not line.startswith("  ")] == texts
    entity = re.compile(r"""  (AUTHOR|DATE) +('.*'|".*") \((\d\.\d\d)\)""")  # the corpus's types; a repr
    sentence = ""
    for line in printed:
        if not line.startswith("  "):
            sentence = line
            continue
        match = entity.fullmatch(line)
        assert match, f"not an entity line: {line!r}"
        assert ast.literal_eval(match[2]) in sentence and 0 <= float(match[3]) <= 1


@pytest.mark.slow
def test_error_analysis_reports_the_quickstart_model(quickstart, kernel: str) -> None:
    root, _ = quickstart
    parameters = {
        "MODEL": str(root / "run" / "model"),
        "OUTPUT_DIR": str(root / "eval"),
        "SPLIT": "test",
        "OVERRIDES": [f"data.cache_dir={root / 'cache'}", f"data.synthetic_size={SIZE}"],
    }
    notebook = run_notebook("02_error_analysis.ipynb", parameters, root, kernel)
    for name in ("report.md", "report.json", "confusion.png"):
        assert (root / "eval" / name).exists(), name
    text, kinds = outputs(notebook)
    assert "image/png" in kinds  # the confusion matrix is shown
    assert "AUTHOR" in text and "micro avg" in text  # the scores table


def test_notebooks_are_stored_without_outputs() -> None:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name
