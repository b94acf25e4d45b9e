"""``fastwb train``'s preprocessing: standardized numbers, imputed missing values,
one-hot encoded text columns and a scaled regression target, each of which
can be turned off; saved with the model, applied by ``predict``, shown by
``info``; and scores on scikit-learn's bundled data sets as good as a
standardized scikit-learn MLP's."""
import csv
import re
import warnings

import numpy as np
import pytest

from fastwb import saving
from fastwb.cli import fastread, main, tables
from fastwb.cli.preprocessing import estimator_of

pytest.importorskip("sklearn")
from sklearn import datasets  # noqa: E402
from sklearn.compose import TransformedTargetRegressor  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

READERS = fastread.installed_readers()


def _run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _write(path, names, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        writer.writerows(rows)
    return path


def _score(err: str) -> float:
    match = re.search(r"(?:accuracy|R\^2) on \d+ samples of .*: (-?[0-9.]+)", err)
    assert match, err
    return float(match.group(1))


# --- as good as a standardized scikit-learn MLP ---------------------------------------------

@pytest.mark.parametrize("name", ["diabetes", "wine", "breast_cancer", "iris"])
def test_defaults_score_as_a_standardized_scikit_learn_mlp(name, tmp_path, capsys):
    """The same hidden layer (100), epochs (200), learning rate and held-out
    quarter: the command's defaults are within 0.02 of scikit-learn's MLP
    behind a StandardScaler (and, for regression, a standardized target)."""
    data = getattr(datasets, f"load_{name}")()
    X, y = data.data, data.target
    regression = name == "diabetes"
    if name == "wine":
        y = np.array([f"cultivar {label}" for label in y])     # text labels
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=None if regression else y)
    names = [str(n).replace(" ", "_") for n in data.feature_names] + ["target"]
    for part, (A, b) in {"train": (X_train, y_train), "test": (X_test, y_test)}.items():
        _write(tmp_path / f"{part}.csv", names,
               [[repr(float(v)) for v in row] + [label] for row, label in zip(A, b)])
    model = tmp_path / "model.fwb"
    status, out, err = _run(capsys, "train", tmp_path / "train.csv", "--target", "target",
                            "--out", model)
    assert status == 0, err
    status, _, err = _run(capsys, "predict", model, tmp_path / "test.csv", "--target", "target")
    assert status == 0, err
    ours = _score(err)

    mlp = (MLPRegressor if regression else MLPClassifier)(hidden_layer_sizes=(100,),
                                                            max_iter=200, random_state=0)
    reference = make_pipeline(StandardScaler(), mlp)
    if regression:
        reference = TransformedTargetRegressor(regressor=reference, transformer=StandardScaler())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # ConvergenceWarning after 200 epochs
        reference.fit(X_train, y_train)
    theirs = reference.score(X_test, y_test)
    assert ours >= theirs - 0.02, (name, ours, theirs)


# --- missing values and text columns, end to end ---------------------------------------------

COLORS = ["red", "green", "blue"]


def _shop(n, seed, colors=COLORS):
    """Rows (price, weight, color, size, label): the label follows the color
    and the price; some prices and weights are missing (empty, NA, ?)."""
    rng = np.random.default_rng(seed)
    price = rng.normal(100.0, 30.0, size=n)
    weight = rng.normal(5.0, 2.0, size=n)
    color = np.array(colors)[rng.integers(0, len(colors), size=n)]
    size = np.array(["S", "M", "L"])[rng.integers(0, 3, size=n)]
    label = np.where((color == "red") ^ (price > 100), "buy", "skip")
    rows = []
    for i in range(n):
        p = "" if i % 17 == 3 else "NA" if i % 23 == 5 else repr(float(price[i]))
        w = "?" if i % 19 == 7 else repr(float(weight[i]))
        rows.append([p, w, color[i], size[i], label[i]])
    return rows


NAMES = ["price", "weight", "color", "size", "label"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shop")
    _write(folder / "train.csv", NAMES, _shop(300, 0))
    status = main(["train", str(folder / "train.csv"), "--target", "label", "--epochs", "300",
                   "--out", str(folder / "model.fwb")])
    assert status == 0
    return folder


def _missing(rows, column):
    return sum(row[column] in ("", "NA", "?") for row in rows)


def test_missing_values_and_text_columns_train(shop, capsys, tmp_path):
    rows = _shop(300, 0)
    status, out, err = _run(capsys, "train", shop / "train.csv", "--target", "label",
                            "--epochs", "300", "--out", tmp_path / "m.fwb")
    assert status == 0, err
    n_price, n_weight = _missing(rows, 0), _missing(rows, 1)
    assert "300 samples, 4 features (2 of them text)" in out
    assert (f"imputed {n_price + n_weight} missing values in 2 columns (price: {n_price}, "
            f"weight: {n_weight}) with the column medians") in out
    assert "preprocessing: 2 numeric columns: imputed (training medians), standardized" in out
    assert "preprocessing: 2 text columns one-hot encoded (categories: color: 3, size: 3)" in out
    assert float(re.search(r"training accuracy: ([0-9.]+)", out).group(1)) > 0.9

    model = saving.load(tmp_path / "m.fwb")            # real scikit-learn objects
    assert type(model).__name__ == "Pipeline"
    preprocess = model.named_steps["preprocess"]
    numeric = preprocess.named_transformers_["numeric"]
    imputer, scaler = numeric.named_steps["impute"], numeric.named_steps["scale"]
    assert imputer.strategy == "median"
    columns = np.array([[np.nan if v in ("", "NA", "?") else float(v) for v in row[:2]]
                        for row in rows])
    np.testing.assert_allclose(imputer.statistics_, np.nanmedian(columns, axis=0))
    assert type(scaler).__name__ == "StandardScaler"
    encoder = preprocess.named_transformers_["text"]
    assert encoder.handle_unknown == "ignore"
    assert [list(c) for c in encoder.categories_] == [sorted(COLORS), ["L", "M", "S"]]
    assert list(model.feature_names_in_) == NAMES[:4]


def test_predict_applies_the_preprocessing_and_notes_unknown_categories(shop, capsys,
                                                                          tmp_path):
    rows = _shop(40, 1, colors=COLORS + ["purple"])
    # the columns in another order, and the label left out
    order = [3, 1, 2, 0]
    _write(tmp_path / "new.csv", [NAMES[j] for j in order], [[r[j] for j in order]
                                                             for r in rows])
    status, out, err = _run(capsys, "predict", shop / "model.fwb", tmp_path / "new.csv",
                            "--proba")
    assert status == 0, err
    purple = sum(row[2] == "purple" for row in rows)
    assert purple > 0
    n_price, n_weight = _missing(rows, 0), _missing(rows, 1)
    assert (f"fastwb: imputed {n_price + n_weight} missing values in 2 columns "
            f"(price: {n_price}, weight: {n_weight}) with the training medians") in err
    assert (f"fastwb: {purple} values in 1 text column (color: {purple}) are categories not "
            f"seen in training, encoded as all zeros") in err
    assert len(err.splitlines()) == 2, err     # no warnings of scikit-learn's beside the notes

    model = saving.load(shop / "model.fwb")
    X = np.empty((len(rows), 4), dtype=object)
    for j in range(4):
        X[:, j] = [row[j] for row in rows]
    for j in (0, 1):
        X[:, j] = [np.nan if v in ("", "NA", "?") else float(v) for v in X[:, j]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model.predict(X)
    lines = out.splitlines()
    assert lines[0] == "prediction,proba_buy,proba_skip"
    assert [line.split(",")[0] for line in lines[1:]] == list(expected)


def test_text_categories_that_look_like_numbers_stay_text_at_predict(tmp_path, capsys):
    """A column that was text in training is read as text at predict time, also
    where the new file holds numbers only ("07" stays "07"), whichever reader."""
    rng = np.random.default_rng(2)
    codes = np.array(["07", "12", "x9"])[rng.integers(0, 3, size=60)]
    x = rng.normal(size=60)
    _write(tmp_path / "train.csv", ["x", "code", "y"],
           [[repr(float(a)), c, int(a > 0)] for a, c in zip(x, codes)])
    _write(tmp_path / "new.csv", ["x", "code"],
           [[repr(float(a)), c] for a, c in zip(x[:5], ["07", "12", "07", "12", "7"])])
    assert main(["train", str(tmp_path / "train.csv"), "--target", "y", "--epochs", "3",
                 "--out", str(tmp_path / "m.fwb")]) == 0
    capsys.readouterr()
    for reader in READERS:
        table = tables.read_table(str(tmp_path / "new.csv"), features=["x", "code"],
                                  cells=tables.Cells(text_columns=frozenset({"code"})))
        assert list(table.X[:, 1]) == ["07", "12", "07", "12", "7"], reader
    status, _, err = _run(capsys, "predict", tmp_path / "m.fwb", tmp_path / "new.csv")
    assert status == 0, err
    assert "1 value in 1 text column (code: 1) is a category not seen in training" in err


@pytest.mark.parametrize("reader", READERS)
def test_every_reader_reads_missing_values_and_text_alike(reader, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTWB_CSV_READER", reader)
    text = ("a,color,b,y\n1.5,red,2,x\n, blue ,NA,y\n3,red,?,x\n4,,nan,y\n\n"
            '"5", red ,6,x\n')
    (tmp_path / "mixed.csv").write_text(text)
    cells = tables.Cells(missing=True, text=True)
    table = tables.read_table(str(tmp_path / "mixed.csv"), "y", True, cells=cells)
    assert table.text == (1,) and table.X.dtype == object
    assert list(table.X[:, 1]) == ["red", "blue", "red", "", "red"]
    numbers = table.X[:, [0, 2]].astype(np.float64)
    np.testing.assert_array_equal(numbers, [[1.5, 2], [np.nan, np.nan], [3, np.nan],
                                            [4, np.nan], [5, 6]])
    # the same problems as ever, with the line, when a step is off
    with pytest.raises(tables.CommandError, match="line 3: column 'a' is empty"):
        tables.read_table(str(tmp_path / "mixed.csv"), "y", True, cells=tables.Cells(text=True))
    with pytest.raises(tables.CommandError, match=r"line 2: column 'color' is not numeric "
                                                  r"\('red'\)"):
        tables.read_table(str(tmp_path / "mixed.csv"), "y", True,
                          cells=tables.Cells(missing=True))
    (tmp_path / "inf.csv").write_text("a,y\n1,x\n,y\ninf,x\n")
    with pytest.raises(tables.CommandError, match="line 4: column 'a' holds 'inf'"):
        tables.read_table(str(tmp_path / "inf.csv"), "y", True, cells=cells)
    (tmp_path / "gap.csv").write_text("a,y\n1,x\n2,\n")
    with pytest.raises(tables.CommandError, match="line 3: the target column 'y' is empty"):
        tables.read_table(str(tmp_path / "gap.csv"), "y", True, cells=cells)


def test_parquet_reads_missing_values_and_text_as_csv_does(tmp_path, monkeypatch):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"a": [1.5, None, 3.0], "color": ["red", None, "blue"],
                             "y": ["x", "y", "x"]}), tmp_path / "data.parquet")
    (tmp_path / "data.csv").write_text("a,color,y\n1.5,red,x\n,,y\n3.0,blue,x\n")
    monkeypatch.setenv("FASTWB_CSV_READER", "python")
    cells = tables.Cells(missing=True, text=True)
    from_csv = tables.read_table(str(tmp_path / "data.csv"), "y", True, cells=cells)
    from_parquet = tables.read_table(str(tmp_path / "data.parquet"), "y", True, cells=cells)
    assert from_parquet.text == from_csv.text == (1,)
    assert list(from_parquet.X[:, 1]) == list(from_csv.X[:, 1]) == ["red", "", "blue"]
    np.testing.assert_array_equal(from_parquet.X[:, 0].astype(float), [1.5, np.nan, 3.0])
    np.testing.assert_array_equal(from_csv.X[:, 0].astype(float), [1.5, np.nan, 3.0])


# --- each step can be turned off --------------------------------------------------------------

def _regression_csv(path, missing=False):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 2)) * [1.0, 1000.0]
    y = 500.0 + 300.0 * X[:, 0] + 0.2 * X[:, 1]
    rows = [[repr(float(a)), repr(float(b)), repr(float(t))] for (a, b), t in zip(X, y)]
    if missing:
        rows[4][1] = ""
    return _write(path, ["a", "b", "y"], rows)


def _train(capsys, data, model, *options):
    status, out, err = _run(capsys, "train", data, "--target", "y", "--epochs", "5",
                            "--hidden", "4", "--out", model, *options)
    assert status == 0, err
    return saving.load(model), out


def test_each_no_flag_turns_its_step_off(tmp_path, capsys):
    data = _regression_csv(tmp_path / "r.csv", missing=True)
    model, out = _train(capsys, data, tmp_path / "all.fwb")
    assert type(model).__name__ == "TransformedTargetRegressor"
    assert type(model.transformer_).__name__ == "StandardScaler"
    numeric = model.regressor_.named_steps["preprocess"].named_transformers_["numeric"]
    assert [name for name, _ in numeric.steps] == ["impute", "scale"]
    assert "preprocessing: target standardized (mean" in out

    model, _ = _train(capsys, data, tmp_path / "noscale.fwb", "--no-scale")
    numeric = model.regressor_.named_steps["preprocess"].named_transformers_["numeric"]
    assert type(numeric).__name__ == "SimpleImputer"

    model, out = _train(capsys, data, tmp_path / "notarget.fwb", "--no-scale-target")
    assert type(model).__name__ == "Pipeline" and "target standardized" not in out

    status, _, err = _run(capsys, "train", data, "--target", "y", "--no-impute",
                          "--out", tmp_path / "noimpute.fwb")
    assert status == 1 and "line 6: column 'b' is empty" in err
    clean = _regression_csv(tmp_path / "clean.csv")
    model, _ = _train(capsys, clean, tmp_path / "noimpute.fwb", "--no-impute")
    numeric = model.regressor_.named_steps["preprocess"].named_transformers_["numeric"]
    assert type(numeric).__name__ == "StandardScaler"
    status, _, err = _run(capsys, "predict", tmp_path / "noimpute.fwb", data)
    assert status == 1 and "line 6: column 'b' is empty" in err     # nothing to fill it in

    # all off: the bare estimator, as files were before
    model, out = _train(capsys, clean, tmp_path / "bare.fwb", "--no-scale", "--no-impute",
                        "--no-encode", "--no-scale-target")
    assert type(model).__name__ == "MLPRegressor" and "preprocessing" not in out
    assert list(model.feature_names_in_) == ["a", "b"]


def test_no_encode_refuses_a_text_column(shop, capsys, tmp_path):
    status, _, err = _run(capsys, "train", shop / "train.csv", "--target", "label",
                          "--no-encode", "--out", tmp_path / "m.fwb")
    assert status == 1
    assert err.startswith("fastwb: error: ") and err.count("\n") == 1
    assert re.search(r"line 2: column 'color' is not numeric \('[a-z]+'\); feature columns "
                     r"must hold numbers", err)


def test_encoding_without_numeric_steps_passes_the_numbers_through(shop, capsys, tmp_path):
    data = _write(tmp_path / "clean.csv", NAMES, [row for row in _shop(60, 4)
                                                  if row[0] not in ("", "NA")
                                                  and row[1] != "?"])
    status, _, err = _run(capsys, "train", data, "--target", "label", "--epochs", "3",
                          "--no-scale", "--no-impute", "--out", tmp_path / "m.fwb")
    assert status == 0, err
    model = saving.load(tmp_path / "m.fwb")
    assert model.named_steps["preprocess"].transformers[0][:2] == ("numeric", "passthrough")
    assert estimator_of(model).network.sizes[0] == 2 + 3 + 3


def test_a_scaled_target_trains_the_network_on_standard_units(tmp_path, capsys):
    """The loss the command reports is of the standardized target, and the
    plots follow the copy of the estimator that TransformedTargetRegressor trains."""
    data = _regression_csv(tmp_path / "r.csv")
    status, out, err = _run(capsys, "train", data, "--target", "y", "--epochs", "30",
                            "--hidden", "8", "--plots", tmp_path / "plots",
                            "--out", tmp_path / "m.fwb")
    assert status == 0, err
    assert (tmp_path / "plots" / "loss.png").stat().st_size > 0
    first = float(re.search(r"loss ([0-9.e+-]+) at the first", out).group(1))
    assert first < 10           # the raw target (hundreds) would give a loss of thousands
    model = saving.load(tmp_path / "m.fwb")
    assert estimator_of(model).callbacks is None


# --- info and old files ------------------------------------------------------------------------

def test_info_shows_the_preprocessing(shop, capsys):
    status, out, err = _run(capsys, "info", shop / "model.fwb")
    assert status == 0, err
    assert "Pipeline, file format 1" in out
    assert "preprocessing: 2 numeric columns: imputed (training medians), standardized" in out
    assert "preprocessing: 2 text columns one-hot encoded (categories: color: 3, size: 3)" in out
    assert "mlp: MLPClassifier (fastwb)" in out
    assert "classes: 2: buy, skip" in out
    assert "features: 4: price, weight, color, size" in out
    assert re.search(r"1 +8 +100 +relu", out)          # 2 numbers + 3 + 3 categories


def test_an_old_model_file_of_a_bare_estimator_still_predicts(tmp_path, capsys):
    from fastwb.sklearn import MLPClassifier as FastClassifier
    rng = np.random.default_rng(5)
    X = rng.normal(size=(50, 2))
    labels = np.where(X[:, 0] > 0, "up", "down")
    estimator = FastClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X, labels)
    estimator.feature_names_in_ = np.array(["left", "right"], dtype=object)
    saving.save(estimator, tmp_path / "old.fwb")
    rows = [[repr(float(a)), repr(float(b))] for a, b in X]
    _write(tmp_path / "new.csv", ["right", "left"], [[b, a] for a, b in rows])
    status, out, err = _run(capsys, "predict", tmp_path / "old.fwb", tmp_path / "new.csv")
    assert status == 0, err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = estimator.predict(X)
    assert out.splitlines()[1:] == list(expected)
    assert err == ""                                    # no notes: nothing was preprocessed
    rows[3][1] = ""
    _write(tmp_path / "gap.csv", ["left", "right"], rows)
    status, _, err = _run(capsys, "predict", tmp_path / "old.fwb", tmp_path / "gap.csv")
    assert status == 1 and "line 5: column 'right' is empty" in err
    status, out, _ = _run(capsys, "info", tmp_path / "old.fwb")
    assert status == 0 and "MLPClassifier, file format 1" in out and "preprocessing" not in out


def test_an_identifier_column_gets_a_warning(tmp_path, capsys):
    rng = np.random.default_rng(6)
    x = rng.normal(size=60)
    _write(tmp_path / "ids.csv", ["id", "x", "y"],
           [[f"user{i}", repr(float(a)), int(a > 0)] for i, a in enumerate(x)])
    status, _, err = _run(capsys, "train", tmp_path / "ids.csv", "--target", "y", "--epochs",
                          "3", "--out", tmp_path / "m.fwb")
    assert status == 0, err
    assert ("fastwb: warning: 1 text column (id: 60 categories) has a category for most of the "
            "60 rows: an identifier or free text?") in err
    status, _, err = _run(capsys, "train", tmp_path / "ids.csv", "--target", "y", "--epochs",
                          "3", "--out", tmp_path / "m.fwb", "--val-fraction", "0.5")
    assert "(id: 30 categories) has a category for most of the 30 rows" in err  # training's


def test_a_pipeline_saved_from_python_predicts_with_its_own_steps(tmp_path, capsys):
    """Not only the command's own models: a user's Pipeline with an imputer and
    a OneHotEncoder of text, fitted on a DataFrame, reads missing values and
    text at predict time as well."""
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    from fastwb.sklearn import MLPClassifier as FastClassifier
    rows = _shop(80, 7)
    frame = pd.DataFrame({"price": [np.nan if r[0] in ("", "NA") else float(r[0]) for r in rows],
                          "color": [r[2] for r in rows]})
    labels = [r[4] for r in rows]
    pipeline = make_pipeline(
        ColumnTransformer([("num", SimpleImputer(strategy="mean"), [0]),
                           ("cat", OneHotEncoder(handle_unknown="ignore"), [1])]),
        FastClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline.fit(frame, labels)
    saving.save(pipeline, tmp_path / "user.fwb")
    new = [["", "purple"], ["120.5", "red"], ["NA", "blue"]]
    _write(tmp_path / "new.csv", ["color", "price"], [[c, p] for p, c in new])
    status, out, err = _run(capsys, "predict", tmp_path / "user.fwb", tmp_path / "new.csv")
    assert status == 0, err
    assert ("fastwb: imputed 2 missing values in 1 column (price: 2) with the training mean "
            "values") in err
    assert "1 value in 1 text column (color: 1) is a category not seen in training" in err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = pipeline.predict(pd.DataFrame({"price": [np.nan, 120.5, np.nan],
                                                  "color": ["purple", "red", "blue"]}))
    assert out.splitlines()[1:] == list(expected)


def test_predict_with_a_user_pipeline_that_picks_columns_by_name(tmp_path, capsys):
    """A DataFrame Pipeline (columns named in its ColumnTransformer) saved from
    Python: predict reads its text column as text and gives the model's predictions."""
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    from fastwb.sklearn import MLPClassifier as FastClassifier
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": rng.choice(["x", "y", "z"], 60),
                          "c": rng.normal(size=60)})
    y = (frame["b"] == "x").astype(int).to_numpy()
    prep = ColumnTransformer([("words", OneHotEncoder(handle_unknown="ignore"), ["b"]),
                              ("numbers", make_pipeline(SimpleImputer(), StandardScaler()),
                               ["a", "c"])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_pipeline(prep, FastClassifier(hidden_layer_sizes=(5,), max_iter=30,
                                                   random_state=0)).fit(frame, y)
    saving.save(model, tmp_path / "user.fwb")
    frame.to_csv(tmp_path / "user.csv", index=False)
    status, out, err = _run(capsys, "predict", tmp_path / "user.fwb", tmp_path / "user.csv")
    assert status == 0, err
    np.testing.assert_array_equal(np.array(out.split()[1:], dtype=int), model.predict(frame))
    status, out, err = _run(capsys, "info", tmp_path / "user.fwb")
    assert status == 0 and "preprocessing: 1 text column one-hot encoded" in out, out


def test_a_column_without_any_value_is_kept_and_said(tmp_path, capsys):
    rows = [[i, "", i % 2] for i in range(12)]
    _write(tmp_path / "empty.csv", ["a", "e", "y"], rows)
    status, out, err = _run(capsys, "train", tmp_path / "empty.csv", "--target", "y",
                            "--epochs", "3", "--out", tmp_path / "m.fwb")
    assert status == 0, err
    assert "imputed 12 missing values in 1 column (e: 12) with the column medians; e, " \
           "without any value, with 0" in out
    assert estimator_of(saving.load(tmp_path / "m.fwb")).n_features_in_ == 2
    status, out, err = _run(capsys, "predict", tmp_path / "m.fwb", tmp_path / "empty.csv")
    assert status == 0 and "Skipping features" not in err, err
