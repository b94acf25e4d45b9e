"""The command line's table readers: the same table (or the same one-line error)
whichever CSV reader ran, Parquet files, other delimiters, close names for a
misspelled column, and the progress note for slow reads."""
import gzip
import os
import time

import numpy as np
import pytest

from fastwb.cli import fastread, main, tables
from fastwb.cli.errors import CommandError

READERS = fastread.installed_readers()


@pytest.fixture(params=READERS)
def reader(request, monkeypatch):
    monkeypatch.setenv("FASTWB_CSV_READER", request.param)
    return request.param


def _read(path, monkeypatch, reader, **options):
    monkeypatch.setenv("FASTWB_CSV_READER", reader)
    return tables.read_table(str(path), **options)


def _same(a, b):
    assert a.feature_names == b.feature_names
    assert a.target_name == b.target_name
    assert a.ignored == b.ignored
    assert a.X.dtype == b.X.dtype == np.float64
    np.testing.assert_array_equal(a.X, b.X)         # bit for bit: the same parsing
    if a.target is None:
        assert b.target is None
    else:
        assert a.target.dtype == b.target.dtype
        np.testing.assert_array_equal(a.target, b.target)


def _messy_csv(tmp_path, rng, name="data.csv"):
    """Full-precision doubles (17 digits, exponents), integers, a quoted number,
    padding, a blank line and a byte-order mark, with text labels."""
    n = 300
    doubles = rng.normal(size=n) * 10.0 ** rng.integers(-30, 30, size=n)
    lines = ["\ufeffx, count ,label,y"]
    for i in range(n):
        label = '"big, cat"' if i % 3 else " small "
        lines.append(f"{float(doubles[i])!r},{rng.integers(-10**6, 10**6)},{label},{i % 4}")
        if i == 7:
            lines.append("")
    first, rest = lines[5].split(",", 1)
    lines[5] = f'"{first}",{rest}'
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_every_reader_reads_the_same_table(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    path = _messy_csv(tmp_path, rng)
    careful = _read(path, monkeypatch, "python", target="label", target_required=True)
    assert careful.X.shape == (300, 3)
    assert careful.feature_names == ["x", "count", "y"]
    assert sorted(set(careful.target)) == ["big, cat", "small"]
    for reader in READERS:
        _same(_read(path, monkeypatch, reader, target="label", target_required=True), careful)
        with pytest.raises(CommandError) as raised:         # the labels as a feature
            _read(path, monkeypatch, reader, target="y", target_required=True)
        assert str(raised.value).endswith("line 2: column 'label' is not numeric (' small '); "
                                          "feature columns must hold numbers")
        # a model's columns, by name, in its order; text columns it does not take are ignored
        picked = _read(path, monkeypatch, reader, features=["y", "x"])
        _same(picked, _read(path, monkeypatch, "python", features=["y", "x"]))
        assert picked.ignored == ("count", "label")


def test_the_fast_readers_ran_on_a_clean_file(tmp_path, monkeypatch):
    """Not the careful reader in disguise: a clean file never reaches it."""
    path = _messy_csv(tmp_path, np.random.default_rng(1))
    fast = [reader for reader in READERS if reader != "python"]
    if not fast:
        pytest.skip("neither pyarrow nor pandas is installed")

    def refuse(*args):
        raise AssertionError("the careful reader ran")
    monkeypatch.setattr(tables, "_read_rows", refuse)
    for reader in fast:
        table = _read(path, monkeypatch, reader, target="label", target_required=True)
        assert table.X.shape == (300, 3)


def test_gzip_and_tab_separated_files(tmp_path, monkeypatch, reader):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 3))
    text = "a\tb\tc\ty\n" + "".join("\t".join(repr(float(v)) for v in row) + f"\t{i % 3}\n"
                                     for i, row in enumerate(X))
    with gzip.open(tmp_path / "data.tsv.gz", "wt") as f:
        f.write(text)
    table = tables.read_table(str(tmp_path / "data.tsv.gz"), "y", True)
    np.testing.assert_array_equal(table.X, X)
    np.testing.assert_array_equal(table.target, np.arange(50) % 3)
    assert table.target.dtype == np.int64


BAD = {
    "ragged short": ("a,b,y\n1,2,x\n3,4\n", "line 3: 2 values, but the header has 3 columns"),
    "ragged long": ("a,b,y\n1,2,x\n3,4,y,5\n", "line 3: 4 values, but the header has 3"),
    "empty value": ("a,b,y\n1,2,x\n3,,y\n", "line 3: column 'b' is empty"),
    "quoted empty value": ('a,b,y\n1,2,x\n3,"",y\n', "line 3: column 'b' is empty"),
    "text feature": ("a,b,y\n1,2,x\n3,cat,y\n", "line 3: column 'b' is not numeric ('cat')"),
    "NA text": ("a,b,y\n1,2,x\n3,NA,y\n", "line 3: column 'b' is not numeric ('NA')"),
    "boolean feature": ("a,b,y\nTrue,2,x\nFalse,3,y\n", "line 2: column 'a' is not numeric"),
    "infinite": ("a,b,y\n1,2,x\n\n3,inf,y\n", "line 4: column 'b' holds 'inf'"),
    "nan": ("a,b,y\n1,nan,x\n3,4,y\n", "line 2: column 'b' holds 'nan'"),
    "blank target": ("a,b,y\n1,2,x\n3,4, \n", "line 3: the target column 'y' is empty"),
    "infinite target": ("a,y\n1,2\n3,-inf\n", "line 3: the target column 'y' is not finite"),
    "whitespace line then ragged": ("a,y\n1,2\n   \n3\n", "line 4: 1 values"),
    "header only": ("a,y\n", "has a header but no rows"),
    "blank first line": ("\n1,2\n", "the first line is blank"),
    "not utf-8": (b"a,y\n1,\xff\xfe\n", "not a text (CSV) file"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_the_same_precise_error_whichever_reader(case, tmp_path, reader):
    text, expected = BAD[case]
    path = tmp_path / "bad.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(CommandError) as raised:
        tables.read_table(str(path), "y", True)
    assert expected in str(raised.value)


def test_text_and_boolean_words_are_labels_whichever_reader(tmp_path, monkeypatch):
    path = tmp_path / "labels.csv"
    path.write_text("a,y\n1,True\n2,False\n3,NA\n4, null \n5,1_000\n")
    tables_read = [_read(path, monkeypatch, r, target="y", target_required=True)
                   for r in READERS]
    for table in tables_read:
        _same(table, tables_read[0])
    assert list(tables_read[0].target) == ["True", "False", "NA", "null", "1_000"]


def test_small_files_go_to_the_careful_reader_unless_one_is_chosen(tmp_path, monkeypatch):
    path = tmp_path / "small.csv"
    path.write_text("a,y\n1,2\n")
    monkeypatch.delenv("FASTWB_CSV_READER", raising=False)
    assert fastread.csv_reader(str(path)) == "python"
    monkeypatch.setattr(fastread, "FAST_READ_MIN_BYTES", path.stat().st_size)
    assert fastread.csv_reader(str(path)) == READERS[0]
    for reader in READERS:
        monkeypatch.setenv("FASTWB_CSV_READER", f" {reader.upper()} ")
        assert fastread.csv_reader(str(path)) == reader


def test_an_unknown_reader_is_named(tmp_path, monkeypatch):
    path = tmp_path / "a.csv"
    path.write_text("a,y\n1,2\n")
    monkeypatch.setenv("FASTWB_CSV_READER", "polars")
    with pytest.raises(CommandError, match="choose one of pyarrow, pandas, python"):
        tables.read_table(str(path), "y", True)
    monkeypatch.setenv("FASTWB_CSV_READER", "pyarrow")
    monkeypatch.setattr(fastread, "_installed", lambda module: False)
    with pytest.raises(CommandError, match="pyarrow is not installed"):
        tables.read_table(str(path), "y", True)


# --- delimiters ----------------------------------------------------------------------------

@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_another_delimiter_is_detected(delimiter, tmp_path, reader):
    rows = ["a,b,y", "1.5,2,x", "3,4.25,z"]
    (tmp_path / "comma.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "other.csv").write_text("\n".join(r.replace(",", delimiter) for r in rows))
    _same(tables.read_table(str(tmp_path / "other.csv"), "y", True),
          tables.read_table(str(tmp_path / "comma.csv"), "y", True))


def test_a_decimal_comma_file_separated_by_semicolons(tmp_path, reader):
    """Comma-separated would split "1,5" too, but not consistently: semicolons win."""
    (tmp_path / "eu.csv").write_text("a;b;y\n1,5;2;x\n3;4,25;z\n")
    with pytest.raises(CommandError, match="line 2: column 'a' is not numeric .'1,5'."):
        tables.read_table(str(tmp_path / "eu.csv"), "y", True)


def test_a_row_with_another_delimiter_is_named(tmp_path, reader):
    (tmp_path / "mixed.csv").write_text("a,b,y\n1,2,x\n3;4;z\n")
    with pytest.raises(CommandError) as raised:
        tables.read_table(str(tmp_path / "mixed.csv"), "y", True)
    assert str(raised.value).endswith("line 3: 1 values, but the header has 3 columns; they "
                                      "seem separated by semicolons, the header's by commas")


# --- close names ---------------------------------------------------------------------------

def test_a_misspelled_target_suggests_the_closest_names(tmp_path, reader, capsys):
    path = tmp_path / "flowers.csv"
    path.write_text("petal_length,petal_width,Species\n1,2,a\n3,4,b\n")
    with pytest.raises(CommandError, match=r"unknown column 'species' \(did you mean "
                                           r"'Species'\?\)"):
        tables.read_table(str(path), "species", True)
    with pytest.raises(CommandError, match=r"unknown column 'petal_lenght' \(did you mean "
                                           r"'petal_length' or 'petal_width'\?\)"):
        tables.read_table(str(path), "petal_lenght", True)
    with pytest.raises(CommandError) as raised:
        tables.read_table(str(path), "colour", True)
    assert "did you mean" not in str(raised.value)
    # the command line: one line
    assert main(["train", str(path), "--target", "Specis"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean 'Species'?" in err


def test_a_renamed_model_column_suggests_the_closest_name(tmp_path, reader):
    path = tmp_path / "renamed.csv"
    path.write_text("petal,sepals\n1,2\n")
    with pytest.raises(CommandError, match=r"lacks the column\(s\) sepal that the model was "
                                           r"trained on \(did you mean 'sepals'\?\)"):
        tables.read_table(str(path), features=["petal", "sepal"])


# --- Parquet -------------------------------------------------------------------------------

def _write_parquet(path, columns):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    pq.write_table(pa.table(columns), path)


def test_parquet_reads_as_the_same_table_as_csv(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.normal(size=40) * 1e10
    counts = rng.integers(-50, 50, size=40)
    labels = np.array(["cat", "dog"])[rng.integers(0, 2, size=40)]
    _write_parquet(tmp_path / "data.parquet", {"x": x, "count": counts, "label": labels})
    (tmp_path / "data.csv").write_text(
        "x,count,label\n" + "".join(f"{float(a)!r},{b},{c}\n"
                                     for a, b, c in zip(x, counts, labels)))
    from_csv = _read(tmp_path / "data.csv", monkeypatch, "python", target="label",
                     target_required=True)
    _same(tables.read_table(str(tmp_path / "data.parquet"), "label", True), from_csv)
    # found by its magic number, whatever the name
    (tmp_path / "data.bin").write_bytes((tmp_path / "data.parquet").read_bytes())
    _same(tables.read_table(str(tmp_path / "data.bin"), "label", True), from_csv)
    picked = tables.read_table(str(tmp_path / "data.parquet"), features=["count"])
    assert picked.ignored == ("x", "label")
    np.testing.assert_array_equal(picked.X[:, 0], counts)


def test_parquet_problems_are_named_by_row_and_column(tmp_path):
    _write_parquet(tmp_path / "gap.parquet", {"a": [1.0, None, 3.0], "y": [1, 2, 3]})
    with pytest.raises(CommandError, match="gap.parquet, row 2: column 'a' is empty"):
        tables.read_table(str(tmp_path / "gap.parquet"), "y", True)
    _write_parquet(tmp_path / "text.parquet", {"a": ["1", "x"], "y": [1, 2]})
    with pytest.raises(CommandError, match=r"row 2: column 'a' is not numeric \('x'\)"):
        tables.read_table(str(tmp_path / "text.parquet"), "y", True)
    _write_parquet(tmp_path / "inf.parquet", {"a": [1.0, 2.0], "y": [1.0, np.inf]})
    with pytest.raises(CommandError, match="row 2: the target column 'y' is not finite"):
        tables.read_table(str(tmp_path / "inf.parquet"), "y", True)
    pa = pytest.importorskip("pyarrow")
    _write_parquet(tmp_path / "none.parquet", {"a": pa.array([], pa.float64()),
                                               "y": pa.array([], pa.int64())})
    with pytest.raises(CommandError, match="none.parquet has no rows of data"):
        tables.read_table(str(tmp_path / "none.parquet"), "y", True)
    (tmp_path / "fake.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(CommandError, match="fake.parquet is not a readable Parquet file"):
        tables.read_table(str(tmp_path / "fake.parquet"), "y", True)


def test_parquet_without_a_reader_says_what_to_install(tmp_path, monkeypatch):
    (tmp_path / "data.parquet").write_bytes(b"PAR1")
    monkeypatch.setattr(fastread, "_installed", lambda module: False)
    with pytest.raises(CommandError, match=r'needs pyarrow: pip install "fastwb\[io\]"'):
        tables.read_table(str(tmp_path / "data.parquet"), "y", True)


def test_train_and_predict_on_parquet(tmp_path, capsys):
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 2))
    _write_parquet(tmp_path / "train.parquet",
                   {"a": X[:, 0], "b": X[:, 1], "y": np.where(X[:, 0] > 0, "hi", "lo")})
    model = tmp_path / "m.fwb"
    assert main(["train", str(tmp_path / "train.parquet"), "--target", "y", "--epochs", "3",
                 "--hidden", "4", "--out", str(model)]) == 0
    capsys.readouterr()
    assert main(["predict", str(model), str(tmp_path / "train.parquet")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("prediction") and len(out) == 61


# --- progress ------------------------------------------------------------------------------

def test_a_slow_read_gets_one_progress_line(tmp_path, monkeypatch, capsys, reader):
    path = tmp_path / "slow.csv"
    path.write_text("a,y\n1,2\n3,4\n")
    careful = tables._read_rows

    def slow(*args):
        time.sleep(0.5)
        return careful(*args)
    monkeypatch.setattr(tables, "_read_rows", slow)
    monkeypatch.setattr(tables, "read_csv_columns", lambda *args: None)
    monkeypatch.setattr(fastread, "PROGRESS_AFTER_S", 0.05)
    table = tables.read_table(str(path), "y", True)
    assert table.X.shape == (2, 1)
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"fastwb: reading {path} (0 MB) with {reader} ... ")
    assert err.rstrip().endswith(" s")


def test_a_quick_read_is_silent(tmp_path, capsys, reader):
    path = tmp_path / "quick.csv"
    path.write_text("a,y\n1,2\n")
    tables.read_table(str(path), "y", True)
    assert capsys.readouterr().err == ""


LENIENT = tables.Cells(missing=True, text=True)
#: Rows of another length than the header, in files whose empty cells are
#: allowed (missing values imputed): no reader may pad or cut them silently.
RAGGED_WHERE_MISSING_IS_ALLOWED = {
    "short row": ("a,b,y\n1,2,x\n3\n", "line 3: 1 values, but the header has 3 columns"),
    "trailing commas": ("a,b,y\n1,2,3,\n4,5,6,\n", "line 2: 4 values, but the header has 3"),
    "quoted comma split": ('a,b,y\n1,1, "x,y"\n1,2,z\n', "line 2: 4 values"),
}


@pytest.mark.parametrize("case", list(RAGGED_WHERE_MISSING_IS_ALLOWED))
def test_ragged_rows_are_refused_where_missing_values_are_allowed(case, tmp_path, reader):
    text, expected = RAGGED_WHERE_MISSING_IS_ALLOWED[case]
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(CommandError, match=expected):
        tables.read_table(str(tmp_path / "bad.csv"), "y", True, cells=LENIENT)


def test_missing_cells_read_alike_whichever_reader(tmp_path, monkeypatch):
    """Empty cells (not short rows) are missing values, the same for every reader."""
    (tmp_path / "data.csv").write_text("a,b,y\n1,,x\n,4,y\n5,6,x\n")
    careful = _read(tmp_path / "data.csv", monkeypatch, "python", target="y",
                    target_required=True, cells=LENIENT)
    np.testing.assert_array_equal(careful.X, [[1, np.nan], [np.nan, 4], [5, 6]])
    for reader in READERS:
        _same(_read(tmp_path / "data.csv", monkeypatch, reader, target="y",
                    target_required=True, cells=LENIENT), careful)


def test_an_uppercase_gz_file_is_read_by_every_reader(tmp_path, monkeypatch):
    with gzip.open(tmp_path / "DATA.CSV.GZ", "wt") as f:
        f.write("a,y\n1.5,x\n2.5,y\n")
    for reader in READERS:
        table = _read(tmp_path / "DATA.CSV.GZ", monkeypatch, reader, target="y",
                      target_required=True)
        np.testing.assert_array_equal(table.X, [[1.5], [2.5]])


def test_parquet_integers_beyond_2_to_the_53_read_as_csv_reads_them(tmp_path, monkeypatch):
    big = np.array([2**53 + 1, 2**62 + 3, -(2**60) - 1], dtype=np.int64)
    _write_parquet(tmp_path / "data.parquet", {"id": big, "y": np.array([0, 1, 0])})
    (tmp_path / "data.csv").write_text("id,y\n" + "".join(f"{v},{i % 2}\n"
                                                          for i, v in enumerate(big)))
    from_csv = _read(tmp_path / "data.csv", monkeypatch, "python", target="y",
                     target_required=True)
    _same(tables.read_table(str(tmp_path / "data.parquet"), "y", True), from_csv)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "data.csv")
    with pytest.raises(CommandError, match=r"a FIFO \(named pipe\), not a regular file"):
        tables.check_readable(str(tmp_path / "data.csv"), "data file")


def test_columns_are_chosen_by_name_among_many():
    """By position lookups, not list searches (50,000 columns took minutes)."""
    names = [f"c{i}" for i in range(50_000)]
    plan = tables._plan("wide.csv", names, "c7", True, names[:7] + names[8:])
    assert plan.features[:3] == [0, 1, 2] and len(plan.features) == 49_999
