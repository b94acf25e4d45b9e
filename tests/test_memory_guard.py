"""Sizes from the user are refused before anything is allocated.

Each call below would allocate tens of GiB (or more) if its guard were missing.
They run in a child process whose address space is capped (``RLIMIT_AS``), so a
missing guard fails fast with NumPy's own MemoryError ("Unable to allocate"), not
by the OOM killer; the tests check that the error is fastwb's, naming the size.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastwb
from fastwb import _validation
from fastwb.testing import address_space_limits_work

pytestmark = pytest.mark.skipif(
    not address_space_limits_work(),
    reason="AddressSanitizer reserves terabytes of address space; RLIMIT_AS is Linux's")

#: The child's address space: room for Python, NumPy, SciPy and scikit-learn
#: with their thread pools, far below any of the refused sizes.
CAP = 6 * 2**30
_PREAMBLE = f"""
import resource
resource.setrlimit(resource.RLIMIT_AS, ({CAP}, {CAP}))
"""


def _child(code: str, tmp_path, *argv):
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(fastwb.__file__)),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", _PREAMBLE + textwrap.dedent(code), *argv],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=env, check=False)


CALLS = {
    "classifier": ("from fastwb.sklearn import MLPClassifier\n"
                   "MLPClassifier(hidden_layer_sizes=(10**9,)).fit(X, y)",
                   r"MLPClassifier(hidden_layer_sizes=(1000000000,)) on 3 features"),
    "regressor": ("from fastwb.sklearn import MLPRegressor\n"
                  "MLPRegressor(hidden_layer_sizes=(64, 10**8, 64), dtype='float64').fit(X, y)",
                  "MLPRegressor(hidden_layer_sizes=(64, 100000000, 64))"),
    "network": ("fastwb.Network([3, 10**9, 3])",
                "network of layer sizes [3, 1000000000, 3]"),
    # within the machine's memory, beyond the child's cap: the cap is the limit
    "network under the cap": ("fastwb.Network([3, 2 * 10**8, 3])",
                              "network of layer sizes [3, 200000000, 3]"),
    "batch workspace": ("fastwb.Network([3, 10**5, 2], loss='softmax_cross_entropy').train_step("
                        "np.zeros((10**5, 3), np.float32), np.zeros(10**5, int), "
                        "fastwb.SGD(lr=0.1))",
                        "the workspace for a batch of 100,000 rows"),
    "predictions": ("fastwb.Network([1, 4, 10**6]).predict(np.zeros((10**5, 1), np.float32))",
                    "the predictions of 100,000 rows of 1,000,000 outputs"),
    "initializer": ("fastwb.initializers.GlorotNormal().sample(0, (10**5, 10**5), 10**5, 10**5)",
                    "drawing initial values of shape (100000, 100000)"),
    "constant initializer": ("fastwb.initializers.Ones().sample(0, (10**6, 10**6), 1, 1)",
                             "initial values of shape (1000000, 1000000)"),
    "initial parameters": ("fastwb.initializers.initial_parameters([3, 10**9, 3], "
                           "['relu', 'softmax'], np.float32, 0)",
                           "parameters of layer sizes [3, 1000000000, 3]"),
}


def test_sizes_are_refused_before_allocating(tmp_path):
    code = f"""
    import json
    import numpy as np
    import fastwb, fastwb.initializers
    X = np.random.default_rng(0).normal(size=(20, 3)); y = (X[:, 0] > 0).astype(int)
    results = {{}}
    for name, call in {json.dumps({name: call for name, (call, _) in CALLS.items()})}.items():
        try:
            exec(call)
            results[name] = "no error"
        except Exception as error:
            results[name] = type(error).__name__ + ": " + str(error)
    print(json.dumps(results))
    """
    child = _child(code, tmp_path)
    assert child.returncode == 0, child.stderr
    results = json.loads(child.stdout.splitlines()[-1])
    for name, (_, expected) in CALLS.items():
        assert results[name].startswith("MemoryError: "), (name, results[name])
        assert expected in results[name] and "GiB" in results[name], (name, results[name])


def test_cli_refuses_a_huge_hidden_layer_in_one_line(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)))
    code = "import sys; from fastwb.cli import main; sys.exit(main(sys.argv[1:]))"
    child = _child(code, tmp_path, "train", str(data), "--target", "y",
                   "--hidden", "1000000000", "--out", str(tmp_path / "model.fwb"))
    assert child.returncode == 1, child.stderr
    assert child.stderr.startswith("fastwb: error: out of memory: MLPClassifier("
                                   "hidden_layer_sizes=(1000000000,))"), child.stderr
    assert "Traceback" not in child.stderr and not (tmp_path / "model.fwb").exists()


def test_check_allocation_refuses_beyond_the_limit_only():
    limit = _validation.memory_limit()
    assert 0 < limit <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    _validation.check_allocation(int(limit), "exactly the limit")
    with pytest.raises(MemoryError, match=r"a thing of 5 rows would take [0-9.]+ GiB, more than"):
        _validation.check_allocation(int(limit) + 1, "a thing of 5 rows")


def test_widths_beyond_blas_are_a_value_error():
    from fastwb.sklearn import MLPClassifier
    X = np.zeros((4, 2))
    with pytest.raises(ValueError, match="below 2\\*\\*31"):
        MLPClassifier(hidden_layer_sizes=(2**31,)).fit(X, [0, 1, 0, 1])
