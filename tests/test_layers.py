"""The import contract ([tool.importlinter] in pyproject.toml): the layers of DESIGN.md,
boto3 only in _aws/, pulumi only in _pulumi/, the service's web stack only in service/,
rich never in the edges or the values, and imported at module level only by the faces. A
new upward import fails here, with the chain that breaks it."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contract_holds() -> None:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert command, "import-linter is a dev dependency: pip install -e '.[dev]'"
    done = subprocess.run([command, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "5 kept, 0 broken" in done.stdout


#: The faces: the only modules that may import rich when they are imported.
FACES = ("cli/", "_display.py", "_console.py")


def _module_level_rich_imports(tree: ast.Module) -> list[int]:
    """Lines importing rich outside any function and outside ``if TYPE_CHECKING:``."""
    found: list[int] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.If) and ast.unparse(child.test).endswith("TYPE_CHECKING"):
                continue
            names = ([a.name for a in child.names] if isinstance(child, ast.Import) else
                     [child.module or ""] if isinstance(child, ast.ImportFrom) else [])
            if any(name == "rich" or name.startswith("rich.") for name in names):
                found.append(child.lineno)
            visit(child)

    visit(tree)
    return found


def test_rich_is_imported_at_module_level_only_by_the_faces() -> None:
    package = ROOT / "rclaude_infra"
    eager = {
        str(path.relative_to(package)): lines
        for path in sorted(package.rglob("*.py"))
        if not str(path.relative_to(package)).startswith(FACES)
        and (lines := _module_level_rich_imports(ast.parse(path.read_text())))
    }
    assert eager == {}, f"rich imported as these modules load (import it inside): {eager}"
    # The check sees what it claims to: a face does import rich at module level.
    assert _module_level_rich_imports(ast.parse((package / "_display.py").read_text()))
