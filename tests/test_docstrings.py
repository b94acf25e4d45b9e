"""The examples in the docstrings of every public module run and print what they say.

The modules are found by walking the fastwb package that is imported (the
installed one), not from a list kept by hand: a module added, moved or renamed
is checked without an edit here. Private modules (a name part that starts with
``_``) are left out. Each module with examples is one test case; a module
without examples is no case. A module that cannot be imported because an
optional dependency is missing (``fastwb.sklearn`` without scikit-learn) is a
case that is skipped with the dependency's name; any other import error fails.
"""
import doctest
import importlib
import pkgutil

import pytest

import fastwb

#: Public modules with docstring examples when this walk was written (there are
#: more now): a walk that finds fewer has gone wrong, and must not pass silently.
FEWEST_MODULES_WITH_EXAMPLES = 5


def public_module_names():
    """The names of fastwb and its public modules and subpackages, sorted."""
    names = {fastwb.__name__}
    unimportable = []       # subpackages walk_packages could not import to look inside
    for info in pkgutil.walk_packages(fastwb.__path__, prefix="fastwb.",
                                      onerror=unimportable.append):
        names.add(info.name)
    names.update(unimportable)
    return sorted(name for name in names
                  if not any(part.startswith("_") for part in name.split(".")))


def missing_dependency(error: ImportError):
    """The name of the module outside fastwb whose absence `error` reports, else None."""
    missing = error.name
    if missing is None or missing == "fastwb" or missing.startswith("fastwb."):
        return None
    return missing


def collect():
    """(pytest parameters, names of the modules with examples)."""
    cases, with_examples = [], []
    for name in public_module_names():
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            dependency = missing_dependency(error)
            marks = ()
            if dependency is not None:
                marks = pytest.mark.skip(reason=f"{name} needs {dependency}, which is not "
                                                f"installed ({error})")
            cases.append(pytest.param(name, marks=marks, id=name))
            continue
        if any(test.examples for test in doctest.DocTestFinder().find(module)):
            cases.append(pytest.param(name, id=name))
            with_examples.append(name)
    return cases, with_examples


CASES, WITH_EXAMPLES = collect()


@pytest.mark.parametrize("name", CASES)
def test_docstring_examples(name):
    module = importlib.import_module(name)      # an import error that is no missing dependency fails here
    tests = [test for test in doctest.DocTestFinder().find(module) if test.examples]
    assert tests, f"{name} lost its docstring examples after collection"
    runner = doctest.DocTestRunner()
    report = []
    for test in tests:
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0
    assert result.failed == 0, "".join(report)


def test_the_walk_finds_the_modules_with_examples():
    assert len(WITH_EXAMPLES) >= FEWEST_MODULES_WITH_EXAMPLES, (
        f"only {WITH_EXAMPLES} of fastwb's public modules have docstring examples; "
        f"{FEWEST_MODULES_WITH_EXAMPLES} had them when this test was written")
