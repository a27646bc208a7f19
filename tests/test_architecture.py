"""The shape of ``app/``: its modules' imports form no cycle, settlement sits above fees and reconciliation, and
the domains' rules know no HTTP.

The graph is read from the source (``ast``), not from ``sys.modules``, so that it does not depend on what a test
happened to import first. Every ``import`` and ``from … import`` counts wherever it stands: at module level, inside
a function, under ``if TYPE_CHECKING:``. An import moved into a function still makes one module need the other, so
hiding it there must not hide the cycle.

``from package import name`` is an edge to ``package.name`` when that is a module, else to the package itself.
Importing a submodule also runs its parent packages' ``__init__``; that implied edge is not drawn, so a package
may re-export its submodules without forming a "cycle" (Python resolves that one by design).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "app"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """The modules of ``known`` that the parsed module imports, wherever in it the import stands."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _nearest_known(alias.name, known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in known:
                    yield submodule
                else:
                    yield from _nearest_known(base, known)


def _nearest_known(name: str, known: set[str]) -> Iterator[str]:
    """``import a.b.c`` needs ``a.b.c``; a name that is no module of ours (a third-party one) is skipped."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            yield candidate
            return
        parts.pop()


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Every module of ``package`` under ``root`` → the modules of ``package`` it imports."""
    files = {module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}
    known = set(files)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        graph[module] = {target for target in imported_modules(tree, module, is_package, known) if target != module}
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), each as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_closed_path(graph, set(component)) for component in components]


def _closed_path(graph: Mapping[str, set[str]], component: set[str]) -> list[str]:
    """A shortest way from the component's first module back to itself, inside the component."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{sorted(component)} is no cycle")  # pragma: no cover


def test_no_module_of_app_takes_part_in_an_import_cycle() -> None:
    graph = import_graph(ROOT, PACKAGE)
    assert "app.main" in graph and "app.fees.statements" in graph  # the walk saw the tree
    found = cycles(graph)
    assert not found, "import cycles in app/:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


# Who may not import whom: a domain named on the left never imports one on the right (nor its modules).
# Settlement (approval, payment, the export with its reconciliation) is where fees and reconciliation meet; fees is
# below reconciliation (a claim is matched against a statement's lines).
FORBIDDEN_DEPENDENCIES = {
    "app.fees": ("app.reconciliation", "app.settlement"),
    "app.reconciliation": ("app.settlement",),
}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_settlement_depends_on_fees_and_reconciliation_never_the_reverse() -> None:
    graph = import_graph(ROOT, PACKAGE)
    assert any(_within(module, "app.settlement") for module in graph)
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for lower, uppers in FORBIDDEN_DEPENDENCIES.items()
        if _within(module, lower)
        for target in targets
        if any(_within(target, upper) for upper in uppers)
    )
    assert not wrong, "imports against the direction of the domains:\n" + "\n".join(wrong)


def _is_http_layer(module: str) -> bool:
    """Routers, request dependencies, the application factory, the plumbing of ``app.core`` and the console (pages
    for people: a presentation layer over the domain services, as routers are for the API)."""
    last = module.rsplit(".", 1)[-1]
    return (
        last in ("router", "deps")
        or last.endswith("_router")
        or module == "app.main"
        or _within(module, "app.core")
        or _within(module, "app.console")
    )


def http_imports(tree: ast.AST) -> list[str]:
    """What a module takes from FastAPI or Starlette, wherever the import stands; JSON encoding is not HTTP."""
    found = []
    for node in ast.walk(tree):
        names = (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and not node.level
            else []
        )
        found += [
            name for name in names if name.split(".")[0] in ("fastapi", "starlette") and name != "fastapi.encoders"
        ]
    return found


def test_the_domains_rules_know_no_http() -> None:
    """Services, models and the modules beside them are called by routers, jobs and the command line alike: a
    request (or response) reaches them only as what it means (an ``Actor``, a ``Tenant``), built by the HTTP
    layer."""
    modules = {module_name(path, ROOT): path for path in sorted((ROOT / PACKAGE).rglob("*.py"))}
    assert "app.audit.service" in modules and not _is_http_layer("app.audit.service")
    offenders = {
        module: imports
        for module, path in modules.items()
        if not _is_http_layer(module) and (imports := http_imports(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert not offenders, f"HTTP outside the HTTP layer: {offenders}"


def test_http_imports_are_seen_however_they_are_written() -> None:
    source = (
        "import fastapi\nfrom fastapi import Request\nfrom fastapi.encoders import jsonable_encoder\n"
        "def f():\n    from starlette.requests import Request\n"
    )
    assert http_imports(ast.parse(source)) == ["fastapi", "fastapi", "starlette.requests"]


def test_no_module_at_the_top_of_app_shares_its_name_with_a_domain_module() -> None:
    """A module directly under ``app/`` speaks for the whole service (``app.tables``: every table model), so its
    name must not also mean a domain's thing (as ``app.registry`` and ``app.referrals.registry``, the
    existing-client registry, once did)."""
    top = {path.stem for path in (ROOT / PACKAGE).glob("*.py") if path.stem != "__init__"}
    inner = {path.stem: path for path in sorted((ROOT / PACKAGE).glob("*/**/*.py"))}
    assert "main" in top and "service" in inner  # the walk saw both levels
    shared = {name: str(inner[name].relative_to(ROOT)) for name in sorted(top & set(inner))}
    assert not shared, f"top-level modules named like domain modules: {shared}"


# --- the checker itself, on small trees written here -------------------------------------------------------------


def _tree(tmp_path: Path, files: Mapping[str, str]) -> dict[str, set[str]]:
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return import_graph(tmp_path, "pkg")


@pytest.mark.parametrize(
    ("a_source", "b_source"),
    [
        pytest.param("from pkg.b import thing\n", "import pkg.a\n", id="module-level"),
        pytest.param("from pkg import b\n", "def later():\n    from pkg.a import x\n", id="inside-a-function"),
        pytest.param(
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
            "import pkg.a as a\n",
            id="type-checking-only",
        ),
        pytest.param("from . import b\n", "from .a import x\n", id="relative"),
    ],
)
def test_a_cycle_is_found_however_its_imports_are_written(tmp_path: Path, a_source: str, b_source: str) -> None:
    graph = _tree(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": a_source, "pkg/b.py": b_source})
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_a_longer_cycle_is_printed_as_its_path(tmp_path: Path) -> None:
    graph = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "import pkg.b\n",
            "pkg/b.py": "import pkg.sub.c\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/c.py": "class C: ...\n\ndef f():\n    import pkg.a\n",
            "pkg/d.py": "import pkg.a\nimport os\nimport fastapi\n",
        },
    )
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]]


def test_one_way_imports_and_package_re_exports_are_no_cycle(tmp_path: Path) -> None:
    graph = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "__version__ = '1'\n",
            "pkg/a.py": "from pkg import __version__\nfrom pkg.b import thing\n",
            "pkg/b.py": "from pkg.sub import c\nthing = 1\n",
            "pkg/sub/__init__.py": "from pkg.sub.c import C\n",
            "pkg/sub/c.py": "class C: ...\n",
        },
    )
    assert graph["pkg.a"] == {"pkg", "pkg.b"} and graph["pkg.b"] == {"pkg.sub.c"}
    assert cycles(graph) == []


MAX_MODULE_LINES = 500


def test_every_module_of_the_service_and_the_sdk_is_small() -> None:
    """A module of over 500 lines does several things: split it by what each part does."""
    too_long = {
        str(path.relative_to(ROOT)): lines
        for folder in ("app", "partners")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, too_long


def test_no_test_oracle_in_the_service() -> None:
    """Recounts that check the reports live in tests (tests/reports/oracle.py), never in a production signature."""
    mentions = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "app").rglob("*.py"))
        if "brute_force" in path.read_text(encoding="utf-8")
    ]
    assert not mentions, mentions


_WRITE_SQL = re.compile(r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+([a-z_]+)", re.IGNORECASE)
_WRITE_CALLS = ("update", "insert", "delete")


def _owners() -> tuple[dict[str, str], dict[str, str]]:
    """Each table model's domain (the package under ``app`` that defines it), by class name and by table name."""
    import app.tables  # noqa: F401  (every table model)
    from app.core.models import SQLModel

    by_class, by_table = {}, {}
    for mapper in SQLModel._sa_registry.mappers:
        domain = mapper.class_.__module__.split(".")[1]
        by_class[mapper.class_.__name__], by_table[mapper.local_table.name] = domain, domain
    return by_class, by_table


def foreign_writes(tree: ast.AST, domain: str, by_class: Mapping[str, str], by_table: Mapping[str, str]) -> list[str]:
    """Statements in ``tree`` that write a table of another domain: ``update(Model)``, ``insert(Model)``,
    ``delete(Model)``, or SQL text that inserts into, updates or deletes from a table."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _WRITE_CALLS:
            target = node.args[0] if node.args else None
            if isinstance(target, ast.Name) and by_class.get(target.id, domain) != domain:
                found.append(f"line {node.lineno}: {node.func.id}({target.id})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [
                f"line {node.lineno}: SQL writing {table}"
                for table in _WRITE_SQL.findall(node.value)
                if by_table.get(table, domain) != domain
            ]
    return found


def test_each_table_is_written_by_its_own_domain_only() -> None:
    """Other domains ask the owner's service (DESIGN: a table is written by one domain only)."""
    by_class, by_table = _owners()
    offenders = {}
    for path in sorted((ROOT / "app").rglob("*.py")):
        domain = f"{module_name(path, ROOT)}.".split(".")[1]
        if found := foreign_writes(ast.parse(path.read_text(encoding="utf-8")), domain, by_class, by_table):
            offenders[str(path.relative_to(ROOT))] = found
    assert not offenders, offenders


def test_a_write_to_another_domains_table_is_seen() -> None:
    by_class, by_table = {"ConversionEvent": "conversions"}, {"conversion_events": "conversions"}
    source = 'update(ConversionEvent)\ntext("UPDATE conversion_events SET x = 1")\nupdate(Referral)\n'
    assert foreign_writes(ast.parse(source), "referrals", by_class, by_table) == [
        "line 1: update(ConversionEvent)",
        "line 2: SQL writing conversion_events",
    ]
