"""The dependency rule, walked over every folder's imports (see ADR 8).

Every arrow runs down: the composition root (``daemon/``) at the top, then
the adapters (``hal/``, ``web/``, ``central/``, ``library/``), then the
locker itself (``locker/app``, ``locker/store``, ``locker/domain``).  A file's
folder names its layer; this test reads every import statement of every
file (function-local ones too) and holds it against the table below.
"""

from __future__ import annotations

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names) | {"__future__"}

# folder -> the bibbox layers it may import (its own always allowed)
ALLOWED = {
    "locker/domain": {"locker.domain"},
    "locker/store": {"locker.domain"},
    "locker/app": {"locker.domain"},
    "locker": {"locker.domain"},               # locker/__init__.py: the version only
    "hal": {"locker.domain"},
    "web": {"locker.app", "locker.domain"},
    "central": {"locker.app", "locker.domain"},
    "library": {"locker.app", "locker.domain"},
    "daemon": {"locker", "hal", "web", "central", "library", "config"},
}
# folder -> third-party packages it may import
THIRD_PARTY = {
    "locker/domain": set(),
    "locker/store": set(),
    "locker/app": set(),
    "locker": set(),
    "hal": {"gpiozero", "serial", "RPi", "lgpio", "smbus2", "minimalmodbus", "pymodbus"},
    "web": {"flask", "werkzeug", "waitress", "jinja2", "markupsafe"},
    "central": {"paho"},
    "library": {"nacl", "pysip2", "anyio"},   # pysip2 and its AnyIO: testserver.py only (the ils-demo extra)
    "daemon": {"gpiozero"},   # the pin factory's environment variable, nothing else
}
# Standard-library modules that do I/O: the domain and the application use
# none of them (the application's controller thread is the one exception it
# has: threading and queue, which are not I/O).
IO_MODULES = {"sqlite3", "socket", "subprocess", "ssl", "http", "urllib", "shutil",
              "fcntl", "select", "selectors", "asyncio"}
PURE = ("locker/domain", "locker/app")


def layer_of(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT)
    parts = rel.parts
    if parts[0] == "locker" and len(parts) > 2:
        return f"locker/{parts[1]}"
    return parts[0]


def source_files():
    for folder in ("locker", "hal", "web", "central", "library", "daemon"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def imports_of(path: pathlib.Path):
    """(module name, line) of every import; relative ones made absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = "bibbox." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    else:
        package = package.removesuffix(".__init__")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield module, node.lineno
            for alias in node.names:      # "from bibbox.x import submodule"
                yield f"{module}.{alias.name}", node.lineno


def bibbox_layer(module: str) -> str | None:
    """'bibbox.locker.domain.model' -> 'locker.domain'; None if not ours."""
    parts = module.split(".")
    if parts[0] != "bibbox" or len(parts) < 2:
        return None
    if parts[1] == "locker" and len(parts) > 2 and parts[2] in ("domain", "app", "store"):
        return f"locker.{parts[2]}"
    return parts[1]


FILES = list(source_files())


def test_every_source_file_is_in_a_known_layer():
    for path in FILES:
        assert layer_of(path) in ALLOWED, path


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_dependency_rule(path):
    layer = layer_of(path)
    own = layer.replace("/", ".")
    allowed = ALLOWED[layer] | {own}
    problems = []
    for module, line in imports_of(path):
        top = module.split(".")[0]
        target = bibbox_layer(module)
        if target is not None:
            if not any(target == a or target.startswith(a + ".") for a in allowed):
                problems.append(f"line {line}: {module} ({layer} may import {sorted(allowed)})")
        elif top in ("locker", "hal", "web", "central", "library", "daemon", "config"):
            problems.append(f"line {line}: {module} is imported without the bibbox namespace")
        elif top not in STDLIB and top not in THIRD_PARTY[layer]:
            problems.append(f"line {line}: third-party {top} in {layer}")
        if layer in PURE and top in IO_MODULES:
            problems.append(f"line {line}: {top} does I/O, and {layer} does none")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", [p for p in FILES if layer_of(p) in PURE],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_domain_and_application_open_no_files(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = {n.func.id for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "open" not in calls


def _module_of(path):
    name = "bibbox." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def test_no_import_cycles():
    """No two modules import each other, directly or round a circle."""
    modules = {_module_of(p): p for p in FILES}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m, _ in imports_of(path) if m in modules and m != name}
    # Tarjan's strongly connected components
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            # a package's __init__ re-exporting its own modules is not a circle
            if len(component) > 1 and not _package_reexport(component):
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def _package_reexport(component):
    return len(component) == 2 and any(
        a != b and b.startswith(a + ".") for a in component for b in component)


MAX_LINES = 550   # "about 500": a module past this is doing two jobs


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_short(path):
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{lines} lines"
