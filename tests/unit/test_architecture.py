"""Dependencies point one way: the agent and the controller deploy separately and share only
`protos`; neither may import the other (the agent must install without controller extras)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_top_levels(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("edge_agent", {"controller", "provisioning", "boto3", "fastapi", "uvicorn", "psycopg"}),
        ("controller", {"edge_agent", "provisioning"}),
        ("protos", {"edge_agent", "controller", "provisioning"}),
    ],
)
def test_package_does_not_import(package: str, forbidden: set[str]) -> None:
    imports = imported_top_levels(package)
    bad = {name: sorted(files) for name, files in imports.items() if name in forbidden}
    assert not bad, f"{package} imports {bad}"
