"""How fast the ``fastwb`` command reads a large table, with each reader it can use.

Generates, in a temporary directory, a CSV file of about 80 MB (20 feature
columns of random numbers at full precision and a text label column; nothing is
downloaded) and, when pyarrow is installed, the same table as Parquet. Each
reader then reads it through ``fastwb.cli.tables.read_table``, as
``fastwb train`` does, in a fresh Python process of its own (so that one
reader's memory does not count against the next): the careful pure-Python
reader, pandas and pyarrow for the CSV file, and pyarrow for the Parquet file.

The table gives the wall-clock seconds of the first read in the process
(what one ``fastwb`` command pays: pyarrow's first conversion to NumPy
imports pandas, when installed, some 0.3 s) and of the best of ``--repeats``,
the ratio of the careful reader's best to each reader's, and the process's
peak resident memory above what it held before the first read (after its
imports). The run checks the result too: every reader must return the same
table, bit for bit.

Usage::

    python benchmarks/reading.py [--mb 80] [--repeats 3] [--json results.json]
    python benchmarks/reading.py --quick        # a second or two: the CI smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import fastwb
from fastwb.bench.options import add_json
from fastwb.cli.fastread import installed_readers

N_FEATURES = 20
#: bytes a generated row takes, near enough to size the file
_ROW_BYTES = N_FEATURES * 20 + 8

#: The child process: read the table once per repeat and report as JSON.
_CHILD = """
import hashlib, json, os, resource, sys, time
reader, path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.environ["FASTWB_CSV_READER"] = reader
import importlib
modules = {"pandas": ["pandas"], "pyarrow": ["pyarrow.csv", "pyarrow.parquet"]}
for module in modules.get(reader, []):
    importlib.import_module(module)     # its import is not the read's
from fastwb.cli import tables
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
for _ in range(repeats):
    start = time.perf_counter()
    table = tables.read_table(path, "label", target_required=True)
    times.append(time.perf_counter() - start)
    digest = hashlib.sha256(table.X.tobytes() + "|".join(map(str, table.target)).encode())
    del table
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": min(times), "first_seconds": times[0],
                  "peak_mb": (peak - before) / 1024,
                  "digest": digest.hexdigest()}))
"""


def write_table(folder: Path, megabytes: float, seed: int = 0) -> tuple[Path, Path | None, int]:
    """The CSV file (and the Parquet one, with pyarrow) of about ``megabytes`` MB."""
    n_rows = max(10, int(megabytes * 1e6 / _ROW_BYTES))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, N_FEATURES))
    labels = np.array(["cat", "dog", "bird"])[rng.integers(0, 3, size=n_rows)]
    names = [f"x{j}" for j in range(N_FEATURES)]
    csv_path = folder / "table.csv"
    with open(csv_path, "w") as f:
        f.write(",".join(names + ["label"]) + "\n")
        for start in range(0, n_rows, 10_000):
            chunk = X[start:start + 10_000]
            f.writelines(",".join(map(repr, row.tolist())) + f",{label}\n"
                         for row, label in zip(chunk, labels[start:start + 10_000]))
    parquet_path = None
    if "pyarrow" in installed_readers():
        import pyarrow as pa
        import pyarrow.parquet as pq
        columns = {name: X[:, j] for j, name in enumerate(names)}
        columns["label"] = labels
        parquet_path = folder / "table.parquet"
        pq.write_table(pa.table(columns), parquet_path)
    return csv_path, parquet_path, n_rows


def measure(reader: str, path: Path, repeats: int) -> dict:
    """One reader's best time and peak memory, in a process of its own, which
    imports the fastwb this process did (run in the data's folder, so that a
    source tree in the working directory cannot stand in for it)."""
    home = str(Path(fastwb.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [home] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    done = subprocess.run([sys.executable, "-c", _CHILD, reader, str(path), str(repeats)],
                          capture_output=True, text=True, env=env, cwd=path.parent,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{reader} on {path.name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(megabytes: float, repeats: int) -> dict:
    """Every reader on the same generated table."""
    with tempfile.TemporaryDirectory() as folder:
        csv_path, parquet_path, n_rows = write_table(Path(folder), megabytes)
        result = {"n_rows": n_rows, "n_columns": N_FEATURES + 1,
                  "csv_mb": csv_path.stat().st_size / 1e6, "rows": []}
        for reader in reversed(installed_readers()):        # the careful reader first
            row = measure(reader, csv_path, repeats)
            result["rows"].append({"file": "CSV", "reader": reader, **row})
        if parquet_path is not None:
            result["parquet_mb"] = parquet_path.stat().st_size / 1e6
            row = measure("pyarrow", parquet_path, repeats)
            result["rows"].append({"file": "Parquet", "reader": "pyarrow", **row})
    return result


def report(result: dict) -> str:
    """The Markdown table, times relative to the careful reader's."""
    careful = result["rows"][0]["seconds"]
    lines = ["| file | reader | first read (s) | best read (s) | vs careful | "
             "peak memory above start (MB) |", "|---|---|---:|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['file']} | {row['reader']} | {row['first_seconds']:.2f} | "
                     f"{row['seconds']:.2f} | "
                     f"{careful / row['seconds']:.1f}x | {row['peak_mb']:.0f} |")
    return "\n".join(lines)


def check(result: dict) -> list[str]:
    """Every reader returned the same table."""
    digests = {row["digest"] for row in result["rows"]}
    return [] if len(digests) == 1 else [
        "the readers returned different tables: " +
        ", ".join(f"{row['file']}/{row['reader']} {row['digest'][:12]}"
                  for row in result["rows"])]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=80.0, help="CSV size in MB (default 80)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="reads per reader; the best counts (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: a 1 MB file, read once by each reader")
    add_json(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.mb, args.repeats = 1.0, 1
    result = run(args.mb, args.repeats)
    size = f", Parquet {result['parquet_mb']:.0f} MB" if "parquet_mb" in result else ""
    print(f"{result['n_rows']:,} rows x {result['n_columns']} columns: CSV "
          f"{result['csv_mb']:.0f} MB{size}\n")
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    problems = check(result)
    for problem in problems:
        print(f"CHECK FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
