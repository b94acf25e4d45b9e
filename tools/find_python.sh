#!/usr/bin/env bash
# Print the path of a working CPython interpreter of version X.Y, or exit 1.
#
#   tools/find_python.sh 3.10
#
# pyenv puts a shim python3.X on PATH for every installed version, but a shim
# runs only the versions pyenv has selected; so after python3.X on PATH, look in
# pyenv's own folder of versions (newest patch release first).
set -euo pipefail

[[ $# -eq 1 && $1 =~ ^3\.[0-9]+$ ]] || { echo "usage: $0 3.X" >&2; exit 2; }
version=$1

runs() { "$1" -c 'import sys' >/dev/null 2>&1; }

if runs "python$version"; then
    command -v "python$version"
    exit 0
fi
root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
for candidate in $(ls -d "$root/versions/$version".* 2>/dev/null | sort -V -r); do
    if runs "$candidate/bin/python$version"; then
        echo "$candidate/bin/python$version"
        exit 0
    fi
done
exit 1
