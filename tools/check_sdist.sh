#!/usr/bin/env bash
# Build fastwb's sdist, check that it holds what building and testing need,
# install it into a fresh virtual environment of Python X.Y (pip compiles it
# there) with the test extra, and run the test suite from the unpacked sdist.
#
#   tools/check_sdist.sh 3.10 [OUTDIR]
#
# The sdist is left in OUTDIR (default: dist/).
set -euo pipefail

die() { echo "check_sdist.sh: error: $*" >&2; exit 1; }

[[ $# -ge 1 && $# -le 2 ]] || { echo "usage: $0 3.X [OUTDIR]" >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=$("$REPO/tools/find_python.sh" "$1") || die "no working python$1 here"
mkdir -p "${2:-$REPO/dist}"
OUTDIR=$(cd "${2:-$REPO/dist}" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== build the sdist (python -m build --sdist, Python $1)"
"$PYTHON" -m venv "$WORK/tools"
"$WORK/tools/bin/pip" install -q build
rm -f "$OUTDIR"/fastwb-*.tar.gz
"$WORK/tools/bin/python" -m build --sdist --outdir "$OUTDIR" "$REPO" >"$WORK/build.log" 2>&1 \
    || { tail -n 40 "$WORK/build.log" >&2; die "python -m build --sdist failed"; }
SDIST=$(ls "$OUTDIR"/fastwb-*.tar.gz)
echo "   $SDIST ($(numfmt --to=iec --suffix=B "$(stat -c %s "$SDIST")"))"

echo "== contents: sources, headers, tests, license; nothing generated"
names=$(tar tzf "$SDIST" | cut -d/ -f2-)
for required in LICENSE README.md pyproject.toml setup.py MANIFEST.in fastwb/_core.pyx \
        fastwb/_stats.pyx src_c/fastwb_math.h tests/conftest.py tests/test_readme.py \
        tests/c/pool_stress.c examples/sunny_day.py docs/performance.md benchmarks/conftest.py; do
    grep -qx "$required" <<<"$names" || die "$SDIST lacks $required"
done
for header in "$REPO"/src_c/*.h; do
    grep -qx "src_c/$(basename "$header")" <<<"$names" || die "$SDIST lacks src_c/$(basename "$header")"
done
# (tests/c holds C test programs, written by hand)
if grep -v '^tests/c/' <<<"$names" | grep -E '\.(c|so|pyd)$'; then die "$SDIST holds generated or compiled files"; fi

echo "== install it with the test extra into a fresh venv (compiles fastwb)"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q "$SDIST[test]"

echo "== the test suite, from the unpacked sdist"
tar xzf "$SDIST" -C "$WORK"
cd "$WORK"/fastwb-*/
# the pytest command, not python -m pytest: that would put the unpacked tree, whose
# fastwb folder holds no compiled extension, ahead of the installed fastwb
"$WORK/venv/bin/pytest" -q -p no:cacheprovider
