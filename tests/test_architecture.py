"""The layering docs/architecture.md describes, checked on the source: the stage packages sit side by side
(none imports another), the shared layers below them import no stage, and functions stay short."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "mapl_cli"
STAGES = ("synth", "train", "evaluation", "sampling")
SHARED = ("encoding", "generation", "instructions")  # below the stages: imported by them, importing none of them
TOP_LEVEL_SHARED = ("pairs", "prefs", "benchmark", "models", "manifest", "errors", "modelcheck", "jsonl", "runfolder",
                    "card", "hub", "tracking", "export")
MAX_FUNCTION_LINES = 60


def _imports(path: Path) -> set[str]:
    """Every mapl_cli module a file imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("mapl_cli.")}


def _package_files(package: str) -> list[Path]:
    folder = ROOT / package
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [ROOT / f"{package}.py"]


def _imported_packages(package: str) -> dict[str, set[str]]:
    """file -> the mapl_cli sub-packages (second name component) it imports."""
    return {
        str(path.relative_to(ROOT)): {name.split(".")[1] for name in _imports(path)}
        for path in _package_files(package)
        if path.exists()
    }


@pytest.mark.parametrize("stage", STAGES)
def test_no_stage_package_imports_another(stage):
    others = set(STAGES) - {stage}
    offending = {f: sorted(used & others) for f, used in _imported_packages(stage).items() if used & others}
    assert not offending, f"{stage} imports another stage: {offending}"


@pytest.mark.parametrize("layer", SHARED + TOP_LEVEL_SHARED)
def test_shared_layers_import_no_stage_and_no_command(layer):
    above = set(STAGES) | {"commands", "cli"}
    offending = {f: sorted(used & above) for f, used in _imported_packages(layer).items() if used & above}
    assert not offending, f"{layer} imports a stage or a command: {offending}"


def test_the_import_scan_sees_imports_inside_functions(tmp_path):
    """The scan is not vacuous: an import inside a function (how this code defers heavy imports) counts."""
    path = tmp_path / "x.py"
    path.write_text("import mapl_cli.pairs\ndef f():\n    from mapl_cli.evaluation.reward import score\n")
    assert {name.split(".")[1] for name in _imports(path)} == {"pairs", "evaluation"}


def _long_functions(limit: int) -> list[str]:
    """Functions over `limit` lines. A command's signature is its Typer option declarations, one per line
    (train-dpo has 41): for `commands/*.py:command` the body is measured, from its docstring on."""
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = node.body[0].lineno if path.parent.name == "commands" and node.name == "command" else node.lineno
                lines = node.end_lineno - first + 1
                if lines > limit:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    return long


def test_no_function_over_sixty_lines():
    assert _long_functions(MAX_FUNCTION_LINES) == []
