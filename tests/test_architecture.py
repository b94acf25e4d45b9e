"""The seams between modules: imports flow one way, with no circle, none
hidden inside a function, and nobody reaches into an optimizer's state."""
from __future__ import annotations

import ast
import pathlib

import pytest

import fastwb

PACKAGE = pathlib.Path(fastwb.__file__).parent
#: Imported inside functions on purpose: modules that need an optional
#: dependency (fastwb.sklearn imports scikit-learn, fastwb._onnx_skl2onnx
#: skl2onnx) or may be absent.
LAZY = {"fastwb.sklearn", "fastwb._onnx_skl2onnx", "fastwb._build_info"}
#: An optimizer's own state, read and written only in fastwb/optimizers.py.
OPTIMIZER_PRIVATE = {"_counters", "_buffers", "_rule", "_slots", "_values", "_hyper", "_code",
                     "_s1", "_s2", "_samples_seen"}
#: Modules built from Cython sources or by setup.py, which have no .py file.
COMPILED = {"fastwb._core", "fastwb._stats", "fastwb._build_info"}


def _modules() -> dict[str, ast.Module]:
    trees = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        trees[name] = ast.parse(path.read_text(), str(path))
    return trees


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.Module, known) -> list[tuple[str, bool]]:
    """(fastwb module imported, whether inside a function) of a module's
    run-time imports (not those under ``if TYPE_CHECKING``)."""
    found = []

    def visit(node, in_function):
        if _is_type_checking(node):
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function = True
        if isinstance(node, ast.Import):
            found.extend((alias.name, in_function) for alias in node.names
                         if alias.name.startswith("fastwb"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and \
                (node.module or "").startswith("fastwb"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.append((full if full in known else node.module, in_function))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(tree, False)
    return found


def _graph() -> dict[str, set[str]]:
    trees = _modules()
    known = set(trees) | COMPILED
    return {name: {target for target, _ in _imports(tree, known) if target != name}
            for name, tree in trees.items()}


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """An import circle of ``graph`` (module -> modules it imports), or None."""
    state: dict[str, int] = {}

    def walk(name, path):
        state[name] = 1
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                return path + [target]
            if target in graph and target not in state:
                found = walk(target, path + [target])
                if found:
                    return found
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            found = walk(name, [name])
            if found:
                return found
    return None


def test_no_import_circles():
    """Through fastwb/__init__.py too: ``from fastwb import __version__`` in a
    module that __init__ imports is a circle."""
    assert _circle(_graph()) is None


def test_no_function_local_imports_of_fastwb_modules():
    trees = _modules()
    hidden = [(name, target) for name, tree in trees.items()
              for target, in_function in _imports(tree, set(trees) | COMPILED)
              if in_function and target not in LAZY]
    assert hidden == []


def test_only_optimizers_touch_an_optimizers_state():
    for name, tree in _modules().items():
        if name == "fastwb.optimizers":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in OPTIMIZER_PRIVATE and not (
                    isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                pytest.fail(f"{name}:{node.lineno} reads {ast.unparse(node)}")


def test_the_checks_find_what_they_look_for():
    """The helpers above see a circle, a hidden import and a private read."""
    tree = ast.parse("def f():\n    from fastwb.network import Network\n"
                     "if TYPE_CHECKING:\n    import fastwb.monitor\nx = opt._counters\n")
    assert _imports(tree, {"fastwb.network"}) == [("fastwb.network", True)]
    assert any(isinstance(n, ast.Attribute) and n.attr in OPTIMIZER_PRIVATE
               for n in ast.walk(tree))
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
