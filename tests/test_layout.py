"""The project's layout rules, checked on the source (docs/architecture.md):

- no import circle among the project's own modules (edge_agent, simulator,
  and the firmware's top-level modules), lazy imports inside functions
  included: a circle is reported by module names, in import order;
- the product package (edge_agent) never imports the simulator, except
  the `edge-agent sim` commands (edge_agent/cli/sim.py), and only inside
  their functions;
- the portable core imports nothing of the project outside the core.

The import graph is read with ``ast`` (no module is executed), so a
circle that only a rarely taken branch closes is caught too.
"""

import ast
import os

from simulator import ROOT

PACKAGES = ("edge_agent", "simulator")
FIRMWARE = os.path.join(ROOT, "firmware")  # its modules are top-level on the board


def project_modules(root=ROOT, packages=PACKAGES, flat_dirs=(FIRMWARE,)):
    """{dotted module name: file path} for every module of ``packages``
    under ``root`` and every top-level module in ``flat_dirs``."""
    modules = {}
    for package in packages:
        for directory, _, files in os.walk(os.path.join(root, package)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                rel = os.path.relpath(os.path.join(directory, name), root)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                modules[".".join(rel)] = os.path.join(directory, name)
    for directory in flat_dirs:
        for name in os.listdir(directory):
            if name.endswith(".py"):
                modules[name[:-3]] = os.path.join(directory, name)
    return modules


def _resolve(name, modules):
    """The project module that importing ``name`` executes last (itself, or
    the package it is in), or None for a module outside the project."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module, path, modules):
    """[(imported module, line, inside a function)] for every import
    statement of the file, at any depth. Importing a.b.c also runs the
    packages a and a.b, so those count as imported too."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = module if os.path.basename(path) == "__init__.py" else module.rpartition(".")[0]
    found = []

    def add(name, node, lazy):
        target = _resolve(name, modules)
        while target:
            if target != module and not module.startswith(target + "."):
                found.append((target, node.lineno, lazy))
            target = target.rpartition(".")[0]
            target = target if target in modules else None

    def walk(node, lazy):
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(alias.name, child, lazy)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - (child.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                for alias in child.names:
                    # `from pkg import mod` imports the module pkg.mod when there is one.
                    full = base + "." + alias.name
                    add(full if full in modules else base, child, lazy)
            walk(child, inner)

    walk(tree, False)
    return found


def import_graph(modules):
    return dict((m, sorted(set(t for t, _, _ in imports_of(m, p, modules)))) for m, p in modules.items())


def find_cycles(graph):
    """Every import circle, each as [a, b, ..., a] (a path through one
    strongly connected component that closes on itself), sorted."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(v):
        # Tarjan's algorithm, iterative (deep packages must not hit the recursion limit).
        work = [(v, iter(graph.get(v, ())))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        while work:
            node, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph.get(w, ()))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    cycles = []
    for component in components:
        members = set(component)
        path = [component[0]]
        while True:  # follow edges inside the component until a module repeats
            nxt = next(w for w in graph[path[-1]] if w in members)
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
                break
            path.append(nxt)
    return sorted(cycles)


def test_no_import_circle_in_the_project():
    cycles = find_cycles(import_graph(project_modules()))
    assert not cycles, "import circles (move the shared piece down to a module both can import):\n" + "\n".join(
        "  " + " -> ".join(c) for c in cycles)


def test_the_checker_finds_a_circle_through_a_lazy_import(tmp_path):
    # The checker itself, on a package made for it: a circle closed by an
    # import inside a function, another through a package's __init__.
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("def later():\n    from pkg.a import thing\n")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub import c\n")
    (pkg / "sub" / "c.py").write_text("import pkg.d\n")
    (pkg / "d.py").write_text("from . import sub\n")
    (pkg / "e.py").write_text("from pkg import a, d\n")  # imports into circles, closes none
    modules = project_modules(str(tmp_path), ("pkg",), ())
    assert find_cycles(import_graph(modules)) == [
        ["pkg.a", "pkg.b", "pkg.a"],
        ["pkg.d", "pkg.sub", "pkg.sub.c", "pkg.d"],
    ]


def test_the_product_never_imports_the_simulator():
    modules = project_modules()
    wrong = []
    for module, path in sorted(modules.items()):
        if not module.startswith("edge_agent"):
            continue
        for target, line, lazy in imports_of(module, path, modules):
            if target.split(".")[0] != "simulator" or target == "simulator":
                continue  # (a submodule's import runs the package too: one line for both)
            if module == "edge_agent.cli.sim" and lazy:
                continue  # the sim commands load the simulator when they run
            wrong.append("%s:%d imports %s%s" % (os.path.relpath(path, ROOT), line, target,
                                                 "" if lazy else " at import time"))
    assert not wrong, "the agent must run without the simulator:\n  " + "\n  ".join(wrong)


def test_the_core_imports_only_the_core():
    modules = project_modules()
    wrong = []
    for module, path in sorted(modules.items()):
        if not module.startswith("edge_agent.core"):
            continue
        for target, line, _ in imports_of(module, path, modules):
            if target != "edge_agent" and not target.startswith("edge_agent.core"):
                wrong.append("%s:%d imports %s" % (os.path.relpath(path, ROOT), line, target))
    assert not wrong, "edge_agent/core/ must stay portable (no adapters, no I/O):\n  " + "\n  ".join(wrong)


SHARED = {"edge_agent", "edge_agent.atomic_file", "edge_agent.boardfile", "edge_agent.broker",
          "edge_agent.metrics_endpoint", "edge_agent.tasks"}
# What each folder of the product may import besides the core and SHARED:
# the command line sits on top, the roles beside each other do not mix.
MAY_IMPORT = {
    "edge_agent.keys": set(),
    "edge_agent.gateway": {"edge_agent.keys"},
    "edge_agent.receiver": {"edge_agent.keys"},
    "edge_agent.tools": {"edge_agent.keys"},
    "edge_agent.deploy": {"edge_agent.keys"},
    "edge_agent.cli": {"edge_agent.keys", "edge_agent.gateway", "edge_agent.receiver", "edge_agent.tools",
                       "edge_agent.deploy"},
}


def _role(module):
    return ".".join(module.split(".")[:2])


def test_imports_go_one_way_between_the_product_folders():
    modules = project_modules()
    wrong = []
    for module, path in sorted(modules.items()):
        role = _role(module)
        if role in SHARED and module.startswith("edge_agent"):
            allowed = SHARED
        elif role in MAY_IMPORT:
            allowed = MAY_IMPORT[role] | SHARED | {role}
        else:
            continue
        for target, line, _ in imports_of(module, path, modules):
            if target.startswith("edge_agent.core") or not target.startswith("edge_agent"):
                continue
            if target not in allowed and _role(target) not in allowed:
                wrong.append("%s:%d imports %s" % (os.path.relpath(path, ROOT), line, target))
    assert not wrong, ("a folder imports one beside or above it (docs/architecture.md: cli -> gateway, receiver, "
                       "tools -> keys -> core; shared pieces go to edge_agent/*.py):\n  " + "\n  ".join(wrong))
