"""Build the compiled core.

Environment switches (all off by default):

* ``FASTWB_NO_OPENMP=1``   build without OpenMP (kernels run serially), silently;
* ``FASTWB_DEBUG_CYTHON=1`` turn Cython bounds/wraparound/initialisation checks on;
* ``FASTWB_NATIVE=1``      add ``-march=native`` for a local build only (the
  resulting binary may crash on other CPUs, so wheels never use it);
* ``FASTWB_SANITIZE=1``    compile with AddressSanitizer and UBSan. Python is not
  built with them, so import the result with the runtimes preloaded:
  ``LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
  ASAN_OPTIONS=detect_leaks=0``;
* ``FASTWB_LIBOMP_PREFIX=DIR`` (macOS, Apple clang) where libomp is installed
  (``DIR/include/omp.h``, ``DIR/lib/libomp.dylib``); default ``brew --prefix libomp``.

OpenMP flags are chosen by the compiler setuptools picked (GCC/clang ``-fopenmp``,
Apple clang ``-Xpreprocessor -fopenmp -lomp``, MSVC ``/openmp``) and tried on a
small program first; when that fails fastwb builds serially, records why in
``fastwb/_build_info.py`` (generated here, never committed) and says so with a
RuntimeWarning at ``import fastwb`` (pip hides a build's own output).

Rebuilds are incremental: ``build/fastwb-fingerprint.json`` records everything
that changes the generated C or the binary (sources, switches, directives,
flags, compiler, Python, Cython and NumPy versions). When it is unchanged and
the generated C exists, neither Cython nor the C compiler runs again; when
anything in it changed, everything is regenerated and recompiled.
"""
import glob
import hashlib
import json
import os
import platform
import pprint
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import Cython
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, CompileError, LinkError

HERE = os.path.dirname(os.path.abspath(__file__))
SWITCHES = ("FASTWB_NO_OPENMP", "FASTWB_DEBUG_CYTHON", "FASTWB_NATIVE", "FASTWB_SANITIZE")
FINGERPRINT = os.path.join(HERE, "build", "fastwb-fingerprint.json")

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


def _run(command):
    """stdout + stderr of a command, or "" when it cannot run."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (result.stdout + result.stderr).strip()


class BuildExt(build_ext):
    """Compiler-aware flags, OpenMP detection, build facts and incremental rebuilds."""

    def build_extensions(self):
        kind, version = self._identify_compiler()
        compile_args, link_args = self._base_flags(kind)
        openmp, reason, omp = self._openmp(kind, version)
        for ext in self.extensions:
            ext.extra_compile_args = compile_args + omp["compile"]
            ext.extra_link_args = link_args + omp["link"]
            # new lists: the extensions share their defaults
            ext.include_dirs = ext.include_dirs + omp["include_dirs"]
            ext.library_dirs = ext.library_dirs + omp["library_dirs"]
            ext.libraries = ext.libraries + omp["libraries"]
        facts = {
            "compiler": kind,
            "compiler_version": version,
            "compile_args": compile_args + omp["compile"],
            "link_args": link_args + omp["link"] + [f"-l{lib}" for lib in omp["libraries"]],
            "openmp": openmp,
            "openmp_reason": reason,
            "switches": {name: _flag(name) for name in SWITCHES},
            "cython_directives": directives(),
            "cython_version": Cython.__version__,
            "numpy_version": np.__version__,
            "python_version": platform.python_version(),
            "platform": f"{sys.platform}-{platform.machine()}",
            # setuptools adds these to every compile and link command
            "environment": {name: os.environ.get(name) for name in
                            ("CC", "CFLAGS", "CPPFLAGS", "LDSHARED", "LDFLAGS")},
        }
        digest = self._fingerprint(facts)
        fresh = self._previous_fingerprint() == digest
        for ext in self.extensions:
            generated = [os.path.splitext(s)[0] + ".c" for s in ext.sources if s.endswith(".pyx")]
            if fresh and all(os.path.exists(c) for c in generated):
                # Cython's own timestamp check would see the build environment's
                # freshly installed NumPy .pxd files as newer than the C code
                ext.sources = [os.path.splitext(s)[0] + ".c" if s.endswith(".pyx") else s
                               for s in ext.sources]
            else:
                ext.sources = cythonize(ext, compiler_directives=directives(), force=True,
                                        quiet=True)[0].sources
        self.force = self.force or not fresh
        super().build_extensions()
        self._write_build_info(facts)
        os.makedirs(os.path.dirname(FINGERPRINT), exist_ok=True)
        with open(FINGERPRINT, "w") as f:
            json.dump({"digest": digest, "facts": facts}, f, indent=1)

    # --- the compiler ---------------------------------------------------------------

    def _identify_compiler(self):
        """("gcc" | "clang" | "apple-clang" | "msvc" | "unknown", version text)."""
        if self.compiler.compiler_type == "msvc":
            if not getattr(self.compiler, "initialized", True):
                self.compiler.initialize()
            banner = _run([getattr(self.compiler, "cc", "cl.exe")])
            return "msvc", banner.splitlines()[0] if banner else "MSVC (version unknown)"
        command = [part for part in self.compiler.compiler_so if part != "ccache"]
        text = _run([command[0], "--version"]) if command else ""
        first = text.splitlines()[0] if text else "unknown"
        if "Apple clang" in text:
            return "apple-clang", first
        if "clang" in text:
            return "clang", first
        if "gcc" in text.lower() or "free software foundation" in text.lower():
            return "gcc", first
        return "unknown", first

    @staticmethod
    def _base_flags(kind):
        """Optimisation flags for this compiler, without OpenMP."""
        if kind == "msvc":
            # /fp:precise (the default) neither contracts a*b+c nor reassociates
            return ["/O2"], []
        # -fno-trapping-math lets the compiler if-convert the branch-free math in
        # src_c and vectorise those loops; it changes no value (unlike -ffast-math,
        # NaN and Inf behave as IEEE says), only which floating-point flags may be
        # raised. -fno-math-errno lets sqrt (in the optimizer updates) vectorise;
        # fastwb never reads errno. -ffp-contract=off: a fused multiply-add rounds
        # once where a*b+c rounds twice, so the AVX-512 kernels (whose level has
        # FMA) or a -march=native build would give other bits than the baseline.
        compile_args = ["-O3", "-fno-trapping-math", "-fno-math-errno", "-ffp-contract=off"]
        link_args = []
        if _flag("FASTWB_NATIVE"):
            compile_args.append("-march=native")
        if _flag("FASTWB_SANITIZE"):
            sanitizers = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
            compile_args += sanitizers + ["-fno-omit-frame-pointer"]
            link_args += sanitizers
        return compile_args, link_args

    # --- OpenMP -----------------------------------------------------------------------

    def _openmp(self, kind, version):
        """("enabled" | "disabled" | "unavailable", reason, flags) for this compiler."""
        none = {"compile": [], "link": [], "include_dirs": [], "library_dirs": [],
                "libraries": []}
        if _flag("FASTWB_NO_OPENMP"):
            return "disabled", "built with FASTWB_NO_OPENMP=1", none
        if kind == "msvc":
            flags = dict(none, compile=["/openmp"])
        elif kind == "apple-clang":
            prefix = os.environ.get("FASTWB_LIBOMP_PREFIX") or self._brew_libomp()
            if not prefix:
                return ("unavailable", "Apple clang needs libomp: install it (brew install "
                        "libomp) or set FASTWB_LIBOMP_PREFIX", none)
            flags = dict(none, compile=["-Xpreprocessor", "-fopenmp"],
                         include_dirs=[os.path.join(prefix, "include")],
                         library_dirs=[os.path.join(prefix, "lib")], libraries=["omp"])
        else:
            flags = dict(none, compile=["-fopenmp"], link=["-fopenmp"])
        failure = self._try_openmp(flags, version)
        if failure:
            return "unavailable", failure, none
        return "enabled", "", flags

    @staticmethod
    def _brew_libomp():
        if shutil.which("brew") is None:
            return ""
        prefix = _run(["brew", "--prefix", "libomp"]).splitlines()
        return prefix[-1] if prefix and os.path.isdir(prefix[-1]) else ""

    def _try_openmp(self, flags, version):
        """Build and run a small OpenMP program; returns why it failed, or "".
        (The compiler's own messages went to the build log.)"""
        used = " ".join(flags["compile"] + flags["link"] + [f"-l{l}" for l in flags["libraries"]])
        tmp = tempfile.mkdtemp(prefix="fastwb-openmp-")
        try:
            src = os.path.join(tmp, "check.c")
            with open(src, "w") as f:
                f.write(OPENMP_TEST_PROGRAM)
            try:
                objects = self.compiler.compile([src], output_dir=tmp,
                                                include_dirs=flags["include_dirs"],
                                                extra_postargs=flags["compile"])
            except (CompileError, CCompilerError):
                return f"{version} could not compile an OpenMP program with {used}"
            try:
                self.compiler.link_executable(objects, "check", output_dir=tmp,
                                              libraries=flags["libraries"],
                                              library_dirs=flags["library_dirs"],
                                              extra_postargs=flags["link"])
            except (LinkError, CCompilerError):
                return f"{version} could not link an OpenMP program with {used}"
            exe = self.compiler.executable_filename("check", output_dir=tmp)
            try:
                ran = subprocess.run([exe], capture_output=True, timeout=60)
            except OSError:
                return ""       # cross-compiling: it compiled and linked, which is what counts
            except subprocess.SubprocessError:
                return f"an OpenMP program built by {version} with {used} did not finish"
            return "" if ran.returncode == 0 else (f"an OpenMP program built by {version} "
                                                   f"with {used} failed when run")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # --- incremental builds and build facts -------------------------------------------

    def _fingerprint(self, facts):
        """A digest of the facts and of every source file that reaches the binary."""
        h = hashlib.sha256(json.dumps(facts, sort_keys=True).encode())
        h.update(str(sysconfig.get_config_var("EXT_SUFFIX")).encode())     # the ABI
        for path in _sources():
            h.update(path.encode())
            with open(os.path.join(HERE, path), "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
        return h.hexdigest()

    @staticmethod
    def _previous_fingerprint():
        try:
            with open(FINGERPRINT) as f:
                return json.load(f)["digest"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def copy_extensions_to_source(self):
        """In-place and editable builds (``pip install -e .``) copy the extensions
        from the build directory into the source tree; the build record goes too."""
        super().copy_extensions_to_source()
        package = self.get_finalized_command("build_py").get_package_dir("fastwb")
        self.copy_file(self._build_info, os.path.join(package, "_build_info.py"))

    def _write_build_info(self, facts):
        """fastwb/_build_info.py beside the built extensions, in the build directory."""
        self._build_info = os.path.join(os.path.dirname(self.get_ext_fullpath("fastwb._core")),
                                        "_build_info.py")
        with open(self._build_info, "w") as f:
            f.write('"""How this copy of fastwb was built: written by setup.py, not in '
                    'version control."""\n\n')
            f.write(f"BUILD = {pprint.pformat(facts, sort_dicts=True)}\n")


def _glob(pattern):
    """Paths relative to HERE (setuptools wants relative source paths)."""
    return sorted(os.path.relpath(path, HERE) for path in glob.glob(os.path.join(HERE, pattern)))


def _sources():
    """Files whose contents reach the generated C or the binary."""
    return ["setup.py"] + _glob("fastwb/*.pyx") + _glob("fastwb/*.pxd") + _glob("src_c/*.h")


def extensions():
    common = dict(
        include_dirs=[np.get_include(), "src_c"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        # the headers: a change recompiles, and they ship in the sdist
        depends=_glob("src_c/*.h"),
    )
    return [
        Extension("fastwb._core", ["fastwb/_core.pyx"], **common),
        Extension("fastwb._stats", ["fastwb/_stats.pyx"], **common),
    ]


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
