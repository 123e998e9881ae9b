"""The import graph of catvec has no cycles. The source is read with `ast`, nothing is imported,
and every import counts, also one inside a function: a cycle there still means two modules
that cannot be understood, tested or moved one without the other.

(That `import catvec` stays light is checked in test_pretrain.py::test_import_and_help_stay_light.)
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def module_name(path: Path, root: Path) -> str:
    """catvec/base/keys.py -> "catvec.base.keys"; catvec/base/__init__.py -> "catvec.base"."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """{module: the modules of the same package it imports}. `from pkg.x import y` is an edge to
    pkg.x.y when that is a module, else to pkg.x; a package stands for its __init__.py."""
    root = package_dir.parent
    files = {module_name(path, root): path for path in sorted(package_dir.rglob("*.py"))}
    graph = {}
    for name, path in files.items():
        # What a relative import is relative to: the package itself, or the module's package.
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:     # from . import x / from ..y import z
                    anchor = here.rsplit(".", node.level - 1)[0]
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base)
        # Outside modules (numpy, __future__, ...) and self-edges are not part of the graph.
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle, as [a, b, .., a], per back edge of a depth-first search: [] iff the graph is acyclic."""
    cycles, done, path = [], set(), []

    def visit(node):
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if target in path:
                cycles.append(path[path.index(target):] + [target])
            elif target not in done:
                visit(target)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            visit(node)
    return cycles


def test_catvec_has_no_import_cycles():
    graph = import_graph(REPO / "catvec")
    assert "catvec" in graph and len(graph) > 10 and sum(map(len, graph.values())) > len(graph)
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in catvec:\n" + "\n".join("  " + " -> ".join(c) for c in cycles)


def test_cycle_finder_finds_cycles():
    assert find_cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    assert find_cycles({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}) == []     # a diamond is fine
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"b"}}) == [["b", "c", "b"]]


def test_import_graph_reads_every_kind_of_import(tmp_path):
    files = {
        "__init__.py": "from pkg.base import keys\n",            # a submodule: edge to pkg.base.keys
        "base/__init__.py": "",
        "base/keys.py": "from __future__ import annotations\nimport numpy\n",
        "base/store.py": "from pkg.base import keys, missing\n",  # missing is a name: edge to pkg.base
        "wing/__init__.py": "from . import run\n",
        "wing/run.py": ("import pkg.base.store as store\n"
                        "def later():\n    from ..base.keys import escape\n    from .helper import x\n"),
        "wing/helper.py": "from . import run\nfrom pkg.wing.run import later\n",
    }
    for name, text in files.items():
        (tmp_path / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    assert import_graph(tmp_path / "pkg") == {
        "pkg": {"pkg.base.keys"},
        "pkg.base": set(),
        "pkg.base.keys": set(),
        "pkg.base.store": {"pkg.base.keys", "pkg.base"},
        "pkg.wing": {"pkg.wing.run"},
        "pkg.wing.run": {"pkg.base.store", "pkg.base.keys", "pkg.wing.helper"},
        "pkg.wing.helper": {"pkg.wing.run"},
    }
    assert find_cycles(import_graph(tmp_path / "pkg")) == [["pkg.wing.run", "pkg.wing.helper", "pkg.wing.run"]]


# part -> the parts it may import: the base knows no wing, the wings know neither each other
# nor the CLI, reports render what the base and the wings write (docs/architecture.md).
LAYERS = {
    "catvec.base": {"catvec.base"},
    "catvec.reports": {"catvec.base", "catvec.reports"},
    "catvec.pretraining": {"catvec.base", "catvec.reports", "catvec.pretraining"},
    "catvec.finetuning": {"catvec.base", "catvec.reports", "catvec.finetuning"},
    "catvec.cli": {"catvec.base", "catvec.reports", "catvec.pretraining", "catvec.finetuning", "catvec.cli"},
}


def part_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_each_part_imports_only_the_parts_below_it():
    graph = import_graph(REPO / "catvec")
    assert {part_of(m) for m in graph} == {"catvec", *LAYERS}
    wrong = sorted(f"{m} -> {t}" for m, targets in graph.items() if part_of(m) in LAYERS
                   for t in targets if t != "catvec" and part_of(t) not in LAYERS[part_of(m)])
    assert not wrong, "imports against the layering of docs/architecture.md:\n  " + "\n  ".join(wrong)
