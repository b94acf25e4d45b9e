"""Build the compiled core.

Environment switches (all off by default):

* ``FASTWB_NO_OPENMP=1``   build without OpenMP (kernels run serially);
* ``FASTWB_DEBUG_CYTHON=1`` turn Cython bounds/wraparound/initialisation checks on;
* ``FASTWB_NATIVE=1``      add ``-march=native`` for a local build only (the
  resulting binary may crash on other CPUs, so wheels never use it);
* ``FASTWB_SANITIZE=1``    compile with AddressSanitizer and UBSan. Python is not
  built with them, so import the result with the runtimes preloaded:
  ``LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
  ASAN_OPTIONS=detect_leaks=0``.
"""
import os
import shutil
import subprocess
import sysconfig
import tempfile
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

OPENMP_TEST_PROGRAM = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return omp_get_max_threads() > 0 && n > 0 ? 0 : 1;
}
"""


def _flag(name):
    return os.environ.get(name, "0").strip().lower() not in ("", "0", "false", "no")


def openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or empty lists with a warning.

    The flags are tried on a tiny program first, so a compiler without OpenMP
    (Apple clang, some minimal toolchains) builds a serial fastwb instead of failing.
    """
    if _flag("FASTWB_NO_OPENMP"):
        warnings.warn("FASTWB_NO_OPENMP is set: building fastwb without OpenMP (serial kernels)",
                      stacklevel=2)
        return [], []
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    flags = ["-fopenmp"]
    tmp = tempfile.mkdtemp(prefix="fastwb-openmp-")
    try:
        src = os.path.join(tmp, "check.c")
        with open(src, "w") as f:
            f.write(OPENMP_TEST_PROGRAM)
        exe = os.path.join(tmp, "check")
        result = subprocess.run(cc + flags + [src, "-o", exe], capture_output=True, text=True)
        if result.returncode == 0 and subprocess.run([exe], capture_output=True).returncode == 0:
            return flags, flags
        warnings.warn(
            "the C compiler could not build an OpenMP program; fastwb is built without "
            "OpenMP and its kernels run serially.\n" + result.stderr[-2000:],
            stacklevel=2,
        )
        return [], []
    except OSError as exc:
        warnings.warn(f"could not test the compiler for OpenMP ({exc}); building without it",
                      stacklevel=2)
        return [], []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def extensions():
    omp_compile, omp_link = openmp_flags()
    # -fno-trapping-math lets gcc if-convert the branch-free math in src_c and
    # vectorise those loops; it changes no value (unlike -ffast-math, NaN and
    # Inf behave as IEEE says), only which floating-point flags may be raised.
    # -fno-math-errno lets sqrt (in the optimizer updates) vectorise; fastwb
    # never reads errno.
    compile_args = ["-O3", "-fno-trapping-math", "-fno-math-errno", "-ffp-contract=off"]
    link_args = []
    if _flag("FASTWB_NATIVE"):
        compile_args.append("-march=native")
    if _flag("FASTWB_SANITIZE"):
        sanitizers = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
        compile_args += sanitizers + ["-fno-omit-frame-pointer"]
        link_args += sanitizers
    common = dict(
        include_dirs=[np.get_include(), "src_c"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        extra_compile_args=compile_args + omp_compile,
        extra_link_args=link_args + omp_link,
    )
    return [
        Extension("fastwb._core", ["fastwb/_core.pyx"], **common),
        Extension("fastwb._stats", ["fastwb/_stats.pyx"], **common),
    ]


def directives():
    debug = _flag("FASTWB_DEBUG_CYTHON")
    return {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": debug,
        "initializedcheck": debug,
        "cdivision": not debug,
        "embedsignature": True,
    }


setup(
    ext_modules=cythonize(
        extensions(),
        compiler_directives=directives(),
        # Directives and flags come from the environment, which timestamps do
        # not see: always regenerate, so a build never reuses another's C code.
        force=True,
    ),
)
