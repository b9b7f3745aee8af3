"""Dependencies point one way (docs/architecture.md).

- The agent and the controller deploy separately and share only `protos` and `vigil_common`
  (pure helpers such as the environment overrides); neither may import the other (the agent
  must install without controller extras).
- No import cycles, between files or between packages (`controller.jobs` <-> `controller.scheduler`
  was one): an import inside a function hides a cycle from Python, not from a reader, so it
  counts; only `if TYPE_CHECKING:` imports do not.
- Only the entry point (`controller/serve_cli.py`) imports the assembly; the bottom packages
  (catalog, storage, grants, audit, clock) and the runtime never import the parts above them.
- Every controller module imports on its own, first, in a fresh interpreter.
- Where things live: each command inside its package and imported by no module; no sibling
  modules named alike (plan/planner, wire/wiring); SQL only in the catalog and the stores
  that own their tables; one time parser; the gRPC server imports no service.
"""

from __future__ import annotations

import ast
import os
import random
import subprocess
import sys
from collections.abc import Iterator
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
        (
            "edge_agent",
            {
                "controller",
                "provisioning",
                "vigil_camsim",
                "boto3",
                "fastapi",
                "uvicorn",
                "psycopg",
            },
        ),
        # The camera emulator is test and demo equipment: it never ships inside the agent (the
        # agent never imports it); it may use the agent's clock, nothing of the controller.
        ("vigil_camsim", {"controller", "provisioning"}),
        ("controller", {"edge_agent", "provisioning"}),
        ("protos", {"edge_agent", "controller", "provisioning"}),
        ("vigil_common", {"edge_agent", "controller", "provisioning", "protos"}),
    ],
)
def test_package_does_not_import(package: str, forbidden: set[str]) -> None:
    imports = imported_top_levels(package)
    bad = {name: sorted(files) for name, files in imports.items() if name in forbidden}
    assert not bad, f"{package} imports {bad}"


# ---- the module graph ------------------------------------------------------------------------


def module_name(root: Path, path: Path) -> str:
    """`controller/jobs/store.py` -> `controller.jobs.store` (a package's __init__ its name)."""
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every module named by an import in `tree`, at any depth, but not under TYPE_CHECKING."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                parent = parts if is_package else parts[:-1]
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        yield from _imports(node, module, is_package)


def module_graph(root: Path, package: str) -> dict[str, set[str]]:
    """module -> the modules of `package` it imports (its own parent packages left out: they
    are initialised first anyway)."""
    paths = {module_name(root, p): p for p in (root / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets = set(_imports(tree, name, path.name == "__init__.py"))
        graph[name] = {t for t in targets if t in paths and t not in parents and t != name}
    return graph


def by_package(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between first-level subpackages: controller.jobs.store -> controller.jobs."""

    def group(name: str) -> str:
        return ".".join(name.split(".")[:2])

    out: dict[str, set[str]] = {}
    for name, targets in graph.items():
        out.setdefault(group(name), set()).update(
            group(t) for t in targets if group(t) != group(name)
        )
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def importers_of(graph: dict[str, set[str]], target: str) -> set[str]:
    return {name for name, targets in graph.items() if target in targets}


@pytest.mark.parametrize("package", ["controller", "edge_agent"])
def test_no_import_cycles_between_files(package: str) -> None:
    assert cycles(module_graph(ROOT, package)) == []


@pytest.mark.parametrize("package", ["controller", "edge_agent"])
def test_no_import_cycles_between_packages(package: str) -> None:
    assert cycles(by_package(module_graph(ROOT, package))) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_cycle_check_fails_on_a_deliberate_cycle(tmp_path: Path) -> None:
    """The checks above can fail: a cycle hidden inside a function between two packages is
    found, a TYPE_CHECKING import is not a cycle, and removing the back edge clears it."""
    _write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/jobs/__init__.py": "",
            "app/jobs/store.py": "from app.scheduler.model import TrafficClass\n",
            "app/scheduler/__init__.py": "",
            "app/scheduler/model.py": "TrafficClass = int\n",
            "app/scheduler/service.py": (
                "def run() -> None:\n    from ..jobs import store\n\n    store.go()\n"
            ),
            "app/audit/__init__.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from app.grants import keys\n"
            ),
            "app/grants/__init__.py": "",
            "app/grants/keys.py": "import app.audit\n",
        },
    )
    graph = module_graph(tmp_path, "app")
    assert graph["app.scheduler.service"] == {"app.jobs", "app.jobs.store"}
    assert cycles(graph) == []  # between files: none (store -> model, service -> store)
    assert cycles(by_package(graph)) == [["app.jobs", "app.scheduler"]]
    (tmp_path / "app/jobs/store.py").write_text("TrafficClass = int\n", encoding="utf-8")
    assert cycles(by_package(module_graph(tmp_path, "app"))) == []
    # A file-level cycle, through a relative import inside a function.
    _write(tmp_path, {"app/jobs/a.py": "def f() -> None:\n    from . import b\n"})
    _write(tmp_path, {"app/jobs/b.py": "from app.jobs.a import f\n"})
    assert cycles(module_graph(tmp_path, "app")) == [["app.jobs.a", "app.jobs.b"]]


# ---- layers ----------------------------------------------------------------------------------

BOTTOM = ["controller.catalog", "controller.storage", "controller.grants", "controller.audit"]
BOTTOM += ["controller.clock", "controller.runtime"]
UPPER = {"controller.api", "controller.fleet", "controller.scheduler", "controller.jobs"}
UPPER |= {"controller.assembly", "controller.components", "controller.serve_cli"}


def test_only_the_entry_point_imports_the_assembly() -> None:
    graph = module_graph(ROOT, "controller")
    assert importers_of(graph, "controller.assembly") == {"controller.serve_cli"}
    assert importers_of(graph, "controller.serve_cli") == set()  # __main__ names it as a string


@pytest.mark.parametrize("package", BOTTOM)
def test_bottom_packages_never_import_the_parts_above(package: str) -> None:
    graph = by_package(module_graph(ROOT, "controller"))
    assert graph[package] & UPPER == set()


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    _write(tmp_path, {"controller/audit/log.py": "def f():\n    import controller.fleet.mqtt\n"})
    _write(tmp_path, {"controller/fleet/mqtt.py": "", "controller/serve_cli.py": ""})
    _write(tmp_path, {"controller/grants/cli.py": "from controller.serve_cli import main\n"})
    graph = by_package(module_graph(tmp_path, "controller"))
    assert graph["controller.audit"] & UPPER == {"controller.fleet"}
    assert graph["controller.grants"] & UPPER == {"controller.serve_cli"}


# ---- every module imports first, alone -------------------------------------------------------

# Run in one child interpreter: third-party libraries are imported once, then every controller
# module is imported first in a forked copy that has imported no controller module yet.
IMPORT_EACH = r"""
import importlib, os, sys, traceback
for lib in ("sqlalchemy", "sqlmodel", "pydantic", "grpc", "fastapi", "uvicorn", "httpx",
            "cryptography.x509", "paho.mqtt.client", "google.protobuf", "boto3", "av"):
    try:
        importlib.import_module(lib)
    except ImportError:
        pass
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failed.append(name)
print("FAILED:", " ".join(failed))
sys.exit(1 if failed else 0)
"""


@pytest.mark.timeout(600)  # one fork per module: minutes on a loaded machine (child bound)
def test_every_controller_module_imports_first_on_its_own() -> None:
    names = sorted(module_graph(ROOT, "controller"))
    names.remove("controller.__main__")  # runs the command line when imported
    seed = random.randrange(1 << 30)
    random.Random(seed).shuffle(names)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    result = subprocess.run(  # this interpreter, fixed arguments
        [sys.executable, "-c", IMPORT_EACH, *names],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"order seed {seed}:\n{result.stdout}\n{result.stderr[-8000:]}"
    assert result.stdout.strip() == "FAILED:"


# ---- where things live -----------------------------------------------------------------------


def is_command_module(name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return leaf == "cli" or leaf.endswith("_cli")


def test_commands_live_in_their_packages_and_nothing_imports_them() -> None:
    """Each command's code is inside its package (`jobs/cli.py`, ...); only `serve` (the entry
    point) sits at the top. `__main__` names command modules as strings; no module, domain or
    command, imports one (shared arguments are in `cli_args.py`)."""
    graph = module_graph(ROOT, "controller")
    top_level = {n for n in graph if n.count(".") == 1 and is_command_module(n)}
    assert top_level == {"controller.serve_cli"}
    imported = {n: sorted(importers_of(graph, n)) for n in graph if is_command_module(n)}
    assert {n: who for n, who in imported.items() if who} == {}


def _stem(name: str) -> str:
    for suffix in ("ner", "ing", "er", "s"):
        if name.endswith(suffix) and len(name) - len(suffix) >= 3:
            name = name[: -len(suffix)]
            break
    return name.rstrip("e")


def look_alike_modules(root: Path, package: str) -> list[list[str]]:
    """Sibling modules whose names differ only by an ending (plan/planner, wire/wiring)."""
    found = []
    for directory in [root / package, *(root / package).rglob("*")]:
        if not directory.is_dir() or directory.name == "__pycache__":
            continue
        by_stem: dict[str, list[str]] = {}
        for path in directory.glob("*.py"):
            if path.stem != "__init__":
                by_stem.setdefault(_stem(path.stem), []).append(path.stem)
        found += [sorted(names) for names in by_stem.values() if len(names) > 1]
    return sorted(found)


@pytest.mark.parametrize("package", ["controller", "edge_agent", "vigil_common"])
def test_no_look_alike_module_names(package: str) -> None:
    assert look_alike_modules(ROOT, package) == []


def test_the_look_alike_check_sees_plan_and_planner(tmp_path: Path) -> None:
    _write(tmp_path, {"app/s/plan.py": "", "app/s/planner.py": "", "app/s/wire.py": ""})
    _write(tmp_path, {"app/s/wiring.py": "", "app/s/leases.py": "", "app/s/model.py": ""})
    assert look_alike_modules(tmp_path, "app") == [["plan", "planner"], ["wire", "wiring"]]


# Modules that may speak SQL: the catalog, the stores that own their own tables, and the
# places that open the engine or map its errors.
SQL_ALLOWED = (
    "controller.catalog",
    "controller.jobs.store",
    "controller.directory.store",  # the resource directory's table (revision 0005)
    "controller.directory.models",
    "controller.jobs.tables",
    "controller.users.store",
    "controller.grants.store",
    "controller.grants.service",  # the Engine type only
    "controller.audit.log",
    "controller.audit.models",
    "controller.runtime",
    "controller.assembly",
    "controller.api.app",  # SQLAlchemyError -> 503
    "controller.fleet.shared",  # the replicas' fleet tables and the registry's version query
    "controller.leader.election",  # the leadership lease row (one conditional UPDATE)
    "controller.leader.tables",
    "controller.leader.fence",  # a leader's writes checked against the lease row's epoch
    "controller.leader.replicas",  # each replica's own leader_lease row: its address (relay)
    "controller.scheduler.board",  # the leader's plan for the followers (scheduler_view)
    "controller.enrollment.store",  # tokens, issued certificates, revocations
    "controller.enrollment.tables",
    "controller.ingest.ledger",  # ingest's multipart ledger (ingest_multipart)
    "controller.gb28181.devstore",  # GB/T 28181 devices registered into Vigil (gb_device)
    "controller.gb28181.tables",
)


def test_sql_only_in_the_catalog_and_the_table_owners() -> None:
    """Playback, the scheduler's upkeep, ingest, fleet, ... ask catalog functions."""
    sql = {"sqlalchemy", "sqlmodel"}
    speakers = set()
    for path in (ROOT / "controller").rglob("*.py"):
        name = module_name(ROOT, path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(t.split(".")[0] in sql for t in _imports(tree, name, path.name == "__init__.py")):
            speakers.add(name)
    outside = sorted(n for n in speakers if not n.startswith(SQL_ALLOWED))
    assert outside == []


def test_one_time_parser() -> None:
    """Only controller/times.py reads ISO 8601 times (three parsers used to disagree)."""
    readers = sorted(
        module_name(ROOT, p)
        for p in (ROOT / "controller").rglob("*.py")
        if "fromisoformat(" in p.read_text(encoding="utf-8")
    )
    assert readers == ["controller.times"]


def test_grpc_server_knows_no_service() -> None:
    """Ingest and AgentControl register on controller/grpcserver; it imports neither."""
    graph = by_package(module_graph(ROOT, "controller"))
    assert graph["controller.grpcserver"] == set()
    assert "controller.ingest" not in graph["controller.scheduler"]
