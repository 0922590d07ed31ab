"""lit_ner's layers, read from every module's imports (those inside functions too): no module imports one that
imports it back, however far round; the data side imports nothing from the model side; no command imports another;
every reader opens models through lit_ner.models (no other module loads transformers weights); and every file
lit_ner writes is written through lit_ner.files."""

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lit_ner"
COMMANDS = {"lit_ner.train", "lit_ner.evaluate", "lit_ner.predict", "lit_ner.serve", "lit_ner.inspect",
            "lit_ner.export_onnx", "lit_ner.push", "lit_ner.active"}  # fmt: skip
BELOW_ALL = {"lit_ner", "lit_ner.errors", "lit_ner.locations", "lit_ner.files"}  # what any layer may import


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(name: str) -> set[str]:
    """The lit_ner modules `name` imports anywhere in its file."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "lit_ner"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lit_ner":
            for alias in node.names:  # `from lit_ner.data import cache` imports the module lit_ner.data.cache
                found.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module)
    return found - {name}


GRAPH = {name: imports(name) for name in MODULES}


def test_every_import_names_a_module_of_lit_ner() -> None:
    assert all(target in MODULES for targets in GRAPH.values() for target in targets)
    assert {"lit_ner.models", "lit_ner.heads", "lit_ner.data.reading", "lit_ner.runners"} <= set(GRAPH)


def test_no_module_imports_one_that_imports_it_back() -> None:
    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen = set()
        while stack:
            name, path = stack.pop()
            for target in GRAPH[name]:
                if target == start:
                    return [*path, start]
                if target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
        return None

    cycles = [cycle for cycle in map(cycle_from, sorted(GRAPH)) if cycle]
    assert not cycles, " -> ".join(cycles[0])


def test_the_data_side_imports_nothing_from_the_model_side() -> None:
    wrong = {name: sorted(t for t in targets if not (t.startswith("lit_ner.data") or t in BELOW_ALL))
             for name, targets in GRAPH.items() if name.startswith("lit_ner.data")}  # fmt: skip
    assert not {name: targets for name, targets in wrong.items() if targets}


def test_no_command_imports_another() -> None:
    assert {name: sorted(GRAPH[name] & COMMANDS) for name in COMMANDS if GRAPH[name] & COMMANDS} == {}


def test_models_are_opened_in_one_place() -> None:
    """Model weights load in lit_ner.models (and in a head, for the transformers model under it), nowhere else:
    every reader (evaluate, NerPredictor, predict, the service, calibration, ONNX export) opens models through it."""
    allowed = {"lit_ner.models", "lit_ner.heads.token", "lit_ner.heads.span"}

    def loads_weights(call: ast.Call) -> bool:
        func = call.func
        if not isinstance(func, ast.Attribute):
            return False
        if func.attr == "load_from_checkpoint":
            return True
        owner = func.value.id if isinstance(func.value, ast.Name) else ""
        return func.attr == "from_pretrained" and owner.startswith("Auto") and owner not in ("AutoConfig", "AutoTokenizer")

    loaders = {name for name, path in MODULES.items()
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.Call) and loads_weights(node)}  # fmt: skip
    assert "lit_ner.models" in loaders and loaders <= allowed, sorted(loaders - allowed)


def test_every_file_is_written_through_lit_ner_files() -> None:
    """One way to write (lit_ner.files: a temporary name beside the target, flushed to disk, renamed in one step).
    Elsewhere a write (open for writing, write_text / write_bytes, os.replace / os.rename / Path.rename, shutil.move)
    stands only inside `with files.replaced(...)`, whose whole folder is flushed and renamed in when the block ends."""

    def call_name(call: ast.Call) -> str:
        func = call.func
        if isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else ""
            return f"{owner}.{func.attr}" if owner in ("os", "shutil", "files") else f".{func.attr}"
        return func.id if isinstance(func, ast.Name) else ""

    def writes(call: ast.Call) -> bool:
        name = call_name(call)
        if name == "open":
            modes = [*call.args[1:2], *(k.value for k in call.keywords if k.arg == "mode")]
            return any(isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax+") for mode in modes)
        return name in (".write_text", ".write_bytes", "os.replace", "os.rename", ".rename", "shutil.move")

    def unguarded(node: ast.AST, guarded: bool = False) -> list[int]:
        if isinstance(node, ast.With) and any(
            isinstance(item.context_expr, ast.Call) and call_name(item.context_expr) in ("files.replaced", "replaced")
            for item in node.items
        ):
            guarded = True
        found = [node.lineno] if isinstance(node, ast.Call) and writes(node) and not guarded else []
        return found + [line for child in ast.iter_child_nodes(node) for line in unguarded(child, guarded)]

    found = {name: lines for name, path in MODULES.items() if name != "lit_ner.files"
             if (lines := unguarded(ast.parse(path.read_text(encoding="utf-8"))))}  # fmt: skip
    assert found == {}, found
