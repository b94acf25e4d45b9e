"""scikit-learn preprocessing saved with the model: Pipelines, ColumnTransformers,
TransformedTargetRegressors and six transformers through ``fastwb.save`` and
``fastwb.load`` predict bit-identically, come back as real scikit-learn objects,
and what cannot be saved is refused, naming the step, before anything is written."""
from __future__ import annotations

import io
import os
import warnings
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest

import fastwb
from fastwb import saving
from fastwb.cli import main

sklearn = pytest.importorskip("sklearn")
from scipy import sparse  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.compose import (ColumnTransformer, TransformedTargetRegressor,  # noqa: E402
                             make_column_selector, make_column_transformer)
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import (FunctionTransformer, MaxAbsScaler, MinMaxScaler,  # noqa: E402
                                   OneHotEncoder, PolynomialFeatures, RobustScaler,
                                   StandardScaler)

from fastwb.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def classifier(dtype="float32"):
    return MLPClassifier(hidden_layer_sizes=(6,), max_iter=4, random_state=0, dtype=dtype)


def regressor(dtype="float32"):
    return MLPRegressor(hidden_layer_sizes=(6,), max_iter=4, random_state=0, dtype=dtype)


def numbers(n=50, seed=0, missing=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * [1.0, 100.0, 0.01, 5.0] + [0.0, 500.0, 0.0, -3.0]
    if missing:
        X[rng.random(X.shape) < 0.15] = np.nan
        X[:, 2] = np.where(np.arange(n) % 7 == 0, np.nan, X[:, 2])
    return X


def labels(n=50, seed=0):
    return np.random.default_rng(seed).choice(["cat", "dog", "emu"], n)


def text(n=50, seed=0, missing=False):
    rng = np.random.default_rng(seed)
    columns = np.stack([rng.choice(["red", "green", "blue", "black"], n, p=[.4, .3, .25, .05]),
                        rng.choice(["s", "m", "l"], n)], axis=1).astype(object)
    if missing:
        columns[::9, 0] = np.nan
        columns[4::11, 1] = None
    return columns


def roundtrip(model, tmp_path, name="model.fwb"):
    path = tmp_path / name
    fastwb.save(model, path)
    return fastwb.load(path)


def dense(values):
    return values.toarray() if sparse.issparse(values) else np.asarray(values)


def assert_identical(saved, loaded, X, y=None, same_params=True):
    """Every output of ``loaded`` equals ``saved``'s bit for bit, the intermediate
    steps' transforms too; with ``same_params`` the parameters are the same
    (their repr, which shows every one not at its default)."""
    assert type(loaded) is type(saved)
    if same_params:
        assert repr(loaded) == repr(saved)
    for method in ("predict", "predict_proba", "predict_log_proba", "transform"):
        if hasattr(saved, method):
            expected, got = getattr(saved, method)(X), getattr(loaded, method)(X)
            assert sparse.issparse(got) == sparse.issparse(expected), method
            np.testing.assert_array_equal(dense(got), dense(expected), err_msg=method)
            assert dense(got).dtype == dense(expected).dtype
    if y is not None:
        assert loaded.score(X, y) == saved.score(X, y)
    if isinstance(saved, Pipeline):
        for i in range(1, len(saved)):
            np.testing.assert_array_equal(dense(loaded[:i].transform(X)),
                                          dense(saved[:i].transform(X)))


# --- every transformer, before a classifier and a regressor ----------------------------

TRANSFORMERS = {
    "standard": StandardScaler(),
    "standard, no mean": StandardScaler(with_mean=False),
    "standard, nothing": StandardScaler(with_mean=False, with_std=False),
    "minmax": MinMaxScaler(),
    "minmax, range and clip": MinMaxScaler(feature_range=(-2, 3), clip=True),
    "maxabs": MaxAbsScaler(),
    "robust": RobustScaler(),
    "robust, options": RobustScaler(with_centering=False, quantile_range=(10.0, 90.0),
                                    unit_variance=True),
}
IMPUTERS = {
    "mean": SimpleImputer(),
    "median": SimpleImputer(strategy="median"),
    "most frequent": SimpleImputer(strategy="most_frequent"),
    "constant": SimpleImputer(strategy="constant", fill_value=-1.5),
    "indicator": SimpleImputer(add_indicator=True),
    "empty kept": SimpleImputer(keep_empty_features=True, add_indicator=True),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(TRANSFORMERS))
def test_scalers(name, dtype, tmp_path):
    X, y = numbers(), labels()
    model = make_pipeline(clone(TRANSFORMERS[name]), classifier(dtype)).fit(X, y)
    assert_identical(model, roundtrip(model, tmp_path), numbers(seed=1), labels(seed=1))
    target = X[:, 0] * 3 + X[:, 3]
    model = make_pipeline(clone(TRANSFORMERS[name]), regressor(dtype)).fit(X, target)
    assert_identical(model, roundtrip(model, tmp_path), numbers(seed=1), target[::-1])


@pytest.mark.parametrize("name", list(IMPUTERS))
def test_imputers(name, tmp_path):
    X = numbers(missing=True)
    X[:, 1] = np.nan if name == "empty kept" else X[:, 1]      # an all-empty column
    model = make_pipeline(clone(IMPUTERS[name]), StandardScaler(), classifier()).fit(X, labels())
    new = numbers(seed=2, missing=True)
    assert_identical(model, roundtrip(model, tmp_path), new, labels(seed=2))


def test_imputer_of_text_and_encoder_with_missing_values(tmp_path):
    X = text(missing=True)
    model = make_pipeline(SimpleImputer(strategy="most_frequent"),
                          OneHotEncoder(handle_unknown="ignore"), classifier()).fit(X, labels())
    assert_identical(model, roundtrip(model, tmp_path), text(seed=3, missing=True))
    # the encoder alone learns NaN and None as categories of their own
    model = make_pipeline(OneHotEncoder(), regressor()).fit(X, np.arange(50.0))
    loaded = roundtrip(model, tmp_path)
    assert_identical(model, loaded, X)
    saved_categories, categories = model[0].categories_, loaded[0].categories_
    assert [list(map(str, c)) for c in categories] == [list(map(str, c)) for c in
                                                       saved_categories]
    assert all(c.dtype == object for c in categories)


ENCODERS = {
    "plain": OneHotEncoder(),
    "ignore unknown": OneHotEncoder(handle_unknown="ignore"),
    "drop first": OneHotEncoder(drop="first"),
    "drop if binary": OneHotEncoder(drop="if_binary", sparse_output=False),
    "drop chosen": OneHotEncoder(drop=["blue", "m"]),
    "infrequent": OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=6),
    "max categories": OneHotEncoder(max_categories=2, drop="first"),
    "float32 output": OneHotEncoder(dtype=np.float32, handle_unknown="ignore"),
    "given categories": OneHotEncoder(categories=[["black", "blue", "green", "red"],
                                                  ["l", "m", "s"]]),
}


@pytest.mark.parametrize("name", list(ENCODERS))
def test_text_encoders(name, tmp_path):
    X = text()
    model = make_pipeline(clone(ENCODERS[name]), classifier("float64")).fit(X, labels())
    loaded = roundtrip(model, tmp_path)
    new = text(seed=4)
    if name in ("ignore unknown", "infrequent", "float32 output"):
        new[:3, 0] = "purple"                   # unknown at predict time
    assert_identical(model, loaded, new, labels(seed=4))
    assert loaded[0].get_params().keys() == model[0].get_params().keys()
    np.testing.assert_array_equal(loaded[0].get_feature_names_out(),
                                  model[0].get_feature_names_out())


def test_categories_of_objects_that_are_numbers(tmp_path):
    X = np.array([[1, 2.5], [2, np.nan], [3, 2.5], [1, 0.5]] * 5, dtype=object)
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore"), classifier()).fit(X, Y[:20])
    loaded = roundtrip(model, tmp_path)
    assert [list(c) for c in loaded[0].categories_][0] == [1, 2, 3]
    assert_identical(model, loaded, X)
    model = make_pipeline(SimpleImputer(strategy="constant", fill_value=7), classifier())
    model.fit(numbers(missing=True), Y)       # statistics_ of objects in scikit-learn 1.8+
    assert_identical(model, roundtrip(model, tmp_path), numbers(seed=3, missing=True))


def test_numeric_categories(tmp_path):
    rng = np.random.default_rng(5)
    X = np.stack([rng.integers(0, 4, 60), rng.choice([0.5, 2.5, 7.0], 60)], axis=1)
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                          regressor("float64")).fit(X, rng.normal(size=60))
    loaded = roundtrip(model, tmp_path)
    assert [c.dtype for c in loaded[0].categories_] == [c.dtype for c in model[0].categories_]
    X[0, 0] = 9                                 # unknown
    assert_identical(model, loaded, X)


def test_text_categories_with_unicode(tmp_path):
    X = np.array([["café"], ["naïve"], ["日本"], ["café"]] * 5, dtype=object)
    model = make_pipeline(OneHotEncoder(), classifier()).fit(X, ["a", "b"] * 10)
    loaded = roundtrip(model, tmp_path)
    assert list(loaded[0].categories_[0]) == ["café", "naïve", "日本"]
    assert_identical(model, loaded, X)


# --- ColumnTransformer ------------------------------------------------------------------

def table(n=50, seed=0):
    pd = pytest.importorskip("pandas")
    X, words = numbers(n, seed, missing=True), text(n, seed, missing=True)
    return pd.DataFrame({"age": X[:, 0], "income": X[:, 1], "height": X[:, 2],
                         "colour": words[:, 0], "size": words[:, 1], "score": X[:, 3]})


def preprocessing_by_name(remainder="drop"):
    numeric = make_pipeline(SimpleImputer(add_indicator=True), StandardScaler())
    words = make_pipeline(SimpleImputer(strategy="constant", fill_value="none"),
                          OneHotEncoder(handle_unknown="ignore"))
    return ColumnTransformer([("numeric", numeric, ["age", "income", "height"]),
                              ("words", words, ["colour", "size"])], remainder=remainder)


@pytest.mark.parametrize("remainder", ["drop", "passthrough"])
def test_dataframe_with_named_columns(remainder, tmp_path):
    X = table()
    if remainder == "passthrough":
        X["score"] = X["score"].fillna(0.0)
    model = make_pipeline(preprocessing_by_name(remainder), classifier()).fit(X, labels())
    loaded = roundtrip(model, tmp_path)
    new = table(seed=6).fillna({"score": 1.0})
    assert_identical(model, loaded, new, labels(seed=6))
    # columns chosen by name: another order, or extra columns, changes nothing
    shuffled = new[list(reversed(new.columns))].assign(extra=1.0)
    np.testing.assert_array_equal(loaded.predict_proba(shuffled), model.predict_proba(new))
    np.testing.assert_array_equal(loaded.feature_names_in_, model.feature_names_in_)
    np.testing.assert_array_equal(loaded[0].get_feature_names_out(),
                                  model[0].get_feature_names_out())
    assert loaded[0].output_indices_ == model[0].output_indices_


@pytest.mark.parametrize("selection", ["index", "mask", "scalar", "negative"])
def test_columns_by_index_and_mask(selection, tmp_path):
    X = numbers(missing=True)
    chosen = {"index": [0, 2], "mask": [True, False, True, False], "scalar": 2,
              "negative": [-4, -2]}[selection]
    inner = SimpleImputer() if selection != "scalar" else "passthrough"
    ct = ColumnTransformer([("a", inner, chosen if selection != "scalar" else [chosen]),
                            ("b", make_pipeline(SimpleImputer(strategy="median"),
                                                MinMaxScaler()), [1, 3]),
                            ("dropped", "drop", [0]),
                            ("none", RobustScaler(), [])],
                           remainder="drop", transformer_weights={"b": 2.0})
    if selection == "scalar":
        X[:, 2] = np.nan_to_num(X[:, 2])
    model = make_pipeline(ct, regressor()).fit(X, np.arange(50.0))
    loaded = roundtrip(model, tmp_path)
    new = numbers(seed=7, missing=True)
    new[:, 2] = np.nan_to_num(new[:, 2]) if selection == "scalar" else new[:, 2]
    assert_identical(model, loaded, new, np.arange(50.0))
    assert loaded[0].transformers_[3][1].__class__ is RobustScaler        # kept unfitted


def test_columns_chosen_by_a_selector_are_saved_as_chosen(tmp_path):
    X = table()
    ct = make_column_transformer(
        (make_pipeline(SimpleImputer(), StandardScaler()), make_column_selector(
            dtype_include=np.number)),
        (OneHotEncoder(handle_unknown="ignore"), make_column_selector(dtype_exclude=np.number)))
    model = make_pipeline(ct, classifier()).fit(X, labels())
    loaded = roundtrip(model, tmp_path)
    assert loaded[0].transformers[0][2] == ["age", "income", "height", "score"]
    assert loaded[0].transformers[1][2] == ["colour", "size"]
    assert_identical(model, loaded, table(seed=13), same_params=False)


def test_passthrough_and_remainder_options(tmp_path):
    X = np.nan_to_num(numbers())
    ct = ColumnTransformer([("keep", "passthrough", [3]), ("scale", MaxAbsScaler(), [0, 1])],
                           remainder="passthrough", verbose_feature_names_out=False,
                           sparse_threshold=0.0)
    model = Pipeline([("ct", ct), ("mlp", classifier())]).fit(X, labels())
    loaded = roundtrip(model, tmp_path)
    assert_identical(model, loaded, X, labels())
    np.testing.assert_array_equal(loaded[0].get_feature_names_out(),
                                  model[0].get_feature_names_out())


def test_sparse_output_reaches_the_network(tmp_path):
    X = text(200)
    ct = ColumnTransformer([("words", OneHotEncoder(), [0, 1])], sparse_threshold=1.0)
    model = make_pipeline(ct, classifier()).fit(X, labels(200))
    assert model[0].sparse_output_
    assert_identical(model, roundtrip(model, tmp_path), X)


def test_sparse_input(tmp_path):
    X = sparse.random(60, 8, density=0.3, format="csr", random_state=0)
    for scaler in (MaxAbsScaler(), StandardScaler(with_mean=False)):
        model = make_pipeline(scaler, classifier()).fit(X, labels(60))
        assert_identical(model, roundtrip(model, tmp_path), X, labels(60))


def test_pandas_output(tmp_path):
    pd = pytest.importorskip("pandas")
    X = table()
    ct = ColumnTransformer([("numeric", SimpleImputer(), ["age", "income"]),
                            ("words", OneHotEncoder(sparse_output=False, handle_unknown="ignore"),
                             ["colour"])], remainder="drop").set_output(transform="pandas")
    model = make_pipeline(ct, classifier()).fit(X, labels())
    loaded = roundtrip(model, tmp_path)
    frame = loaded[0].transform(X)
    assert isinstance(frame, pd.DataFrame)
    pd.testing.assert_frame_equal(frame, model[0].transform(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_bare_column_transformer_and_transformer(tmp_path):
    X = table()
    ct = preprocessing_by_name().fit(X)
    loaded = roundtrip(ct, tmp_path)
    assert saving.read_header(tmp_path / "model.fwb")["kind"] == "ColumnTransformer"
    assert_identical(ct, loaded, table(seed=8))
    scaler = StandardScaler().fit(numbers())
    assert_identical(scaler, roundtrip(scaler, tmp_path), numbers(seed=9))


# --- TransformedTargetRegressor ---------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scaler", [StandardScaler(), MinMaxScaler(), MaxAbsScaler(),
                                    RobustScaler()])
def test_transformed_target(scaler, dtype, tmp_path):
    X = np.nan_to_num(numbers())
    y = X[:, 1] * 40 + 1000
    model = TransformedTargetRegressor(regressor(dtype), transformer=clone(scaler)).fit(X, y)
    loaded = roundtrip(model, tmp_path)
    assert_identical(model, loaded, numbers(seed=10, missing=False), y)
    assert type(loaded.transformer_) is type(scaler)


def test_transformed_target_of_a_pipeline_with_two_outputs(tmp_path):
    X = table()
    Y = np.stack([np.arange(50.0), np.arange(50.0) ** 2], axis=1)
    inner = make_pipeline(preprocessing_by_name(), regressor("float64"))
    model = TransformedTargetRegressor(inner, transformer=StandardScaler()).fit(X, Y)
    loaded = roundtrip(model, tmp_path)
    assert_identical(model, loaded, table(seed=11), Y)
    np.testing.assert_array_equal(loaded.feature_names_in_, model.feature_names_in_)
    # a TransformedTargetRegressor at the end of a Pipeline saves too
    outer = Pipeline([("prep", preprocessing_by_name()),
                      ("ttr", TransformedTargetRegressor(regressor(),
                                                         transformer=RobustScaler()))])
    outer.fit(X, Y[:, 1])
    assert_identical(outer, roundtrip(outer, tmp_path), table(seed=12))


# --- a loaded pipeline is a normal scikit-learn pipeline --------------------------------

def test_loaded_pipeline_refits_and_clones(tmp_path):
    X = table()
    model = make_pipeline(preprocessing_by_name(), classifier()).fit(X, labels())
    loaded = roundtrip(model, tmp_path)
    assert isinstance(loaded, Pipeline) and isinstance(loaded[0], ColumnTransformer)
    assert loaded.get_params()["columntransformer__remainder"] == "drop"
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    refitted, fresh = clone(loaded).fit(X, labels()), clone(model).fit(X, labels())
    np.testing.assert_array_equal(refitted.predict_proba(X), fresh.predict_proba(X))
    loaded.fit(X, labels(seed=1))                 # refits in place too


def test_settings_of_the_machine_are_not_saved(tmp_path):
    """A Pipeline's memory is a folder of the saving machine's, a ColumnTransformer's
    n_jobs a number of its processes: the loaded ones have none."""
    ct = ColumnTransformer([("s", StandardScaler(), [0, 1])], n_jobs=2)
    model = Pipeline([("ct", ct), ("m", classifier())], memory=str(tmp_path / "cache"))
    model.fit(X, Y)
    loaded = roundtrip(model, tmp_path)
    assert loaded.memory is None and loaded[0].n_jobs is None
    assert_identical(model, loaded, X, same_params=False)


def test_saved_again_gives_the_same_file(tmp_path):
    model = make_pipeline(preprocessing_by_name(), classifier()).fit(table(), labels())
    fastwb.save(model, tmp_path / "a.fwb")
    fastwb.save(fastwb.load(tmp_path / "a.fwb"), tmp_path / "b.fwb")
    assert (tmp_path / "a.fwb").read_bytes() == (tmp_path / "b.fwb").read_bytes()


# --- what cannot be saved ---------------------------------------------------------------

X, WORDS, Y = numbers(), text(), labels()
#: what cannot be saved: (makes the model, the error, what its message says)
UNSUPPORTED = {
    "polynomial step": (
        lambda: make_pipeline(PolynomialFeatures(), classifier()).fit(X, Y),
        TypeError, r"step 'polynomialfeatures' \(PolynomialFeatures\)"),
    "function step": (
        lambda: Pipeline([("f", FunctionTransformer(np.log1p)), ("m", classifier())]).fit(
            np.abs(X), Y),
        TypeError, r"step 'f' \(FunctionTransformer\)"),
    "other final estimator": (
        lambda: make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y),
        TypeError, r"step 'logisticregression' \(LogisticRegression\)"),
    "ends in a transformer": (
        lambda: Pipeline([("s", StandardScaler())]).fit(X),
        TypeError, r"step 's' \(StandardScaler\).*cannot stand there"),
    "ends in passthrough": (
        lambda: Pipeline([("s", StandardScaler().fit(X)), ("p", "passthrough")]),
        TypeError, r"last step 'p' is 'passthrough'"),
    "unfitted pipeline": (
        lambda: make_pipeline(StandardScaler(), classifier()),
        ValueError, r"not fitted"),
    "unfitted step": (
        lambda: Pipeline([("s", StandardScaler()), ("m", classifier().fit(X, Y))]),
        ValueError, r"step 's' \(StandardScaler\) of the Pipeline: it is not fitted"),
    "function in a column transformer": (
        lambda: make_pipeline(ColumnTransformer([("log", FunctionTransformer(np.abs), [0])]),
                              classifier()).fit(X, Y),
        TypeError, r"transformer 'log' \(FunctionTransformer\)"),
    "estimator remainder": (
        lambda: make_pipeline(ColumnTransformer([("s", StandardScaler(), [0])],
                                                remainder=MinMaxScaler()),
                              classifier()).fit(X, Y),
        TypeError, "remainder is a MinMaxScaler"),
    "target function": (
        lambda: TransformedTargetRegressor(regressor(), func=np.log1p,
                                           inverse_func=np.expm1).fit(X, np.arange(50.0)),
        TypeError, "transformed by functions"),
    "target encoder": (
        lambda: TransformedTargetRegressor(regressor(), transformer=SimpleImputer(),
                                           check_inverse=False).fit(X, np.arange(50.0)),
        TypeError, r"transformer \(SimpleImputer\).*cannot stand there"),
    "classifier in a target regressor": (
        lambda: TransformedTargetRegressor(classifier(), transformer=StandardScaler(),
                                           check_inverse=False).fit(X, np.arange(50) % 2),
        TypeError, r"regressor \(MLPClassifier\)"),
    "a subclass": (
        lambda: make_pipeline(type("MyScaler", (StandardScaler,), {})(),
                              classifier()).fit(X, Y),
        TypeError, r"\(MyScaler\)"),
    "callable parameter": (
        lambda: make_pipeline(OneHotEncoder(feature_name_combiner=lambda a, b: a + b),
                              classifier()).fit(WORDS, Y),
        ValueError, r"feature_name_combiner="),
    "encoder dtype": (
        lambda: OneHotEncoder(dtype=np.complex128).fit(WORDS),
        ValueError, "the OneHotEncoder: its dtype complex128"),
    "bare transformer unfitted": (
        lambda: StandardScaler(),
        ValueError, "not fitted"),
    "lone surrogate in a name": (
        lambda: Pipeline([("\udcff", StandardScaler()), ("m", classifier())]).fit(X, Y),
        ValueError, "holds lone surrogates"),
    "a linear model": (
        lambda: LogisticRegression().fit(X, Y),
        TypeError, r"LogisticRegression is not supported"),
}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_unsupported_is_refused_naming_the_step(name, tmp_path):
    make, error, match = UNSUPPORTED[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make()
    with pytest.raises(error, match=match):
        fastwb.save(model, tmp_path / "model.fwb")
    assert os.listdir(tmp_path) == []                # nothing written, not even a temporary


# --- info, read_header and predict ------------------------------------------------------

def run_cli(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main([str(arg) for arg in argv])
    return status, out.getvalue(), err.getvalue()


def test_read_header_and_info_show_the_steps(tmp_path):
    model = make_pipeline(preprocessing_by_name("passthrough"), classifier()).fit(
        table().fillna({"score": 0.0}), labels())
    fastwb.save(model, tmp_path / "model.fwb")
    steps = saving.read_header(tmp_path / "model.fwb")["steps"]
    assert steps == [
        "columntransformer: ColumnTransformer (6 columns, remainder passthrough)",
        "  numeric on [age, income, height]: Pipeline",
        "    simpleimputer: SimpleImputer (3 columns, strategy=mean, add_indicator=True)",
        "    standardscaler: StandardScaler (6 columns)",
        "  words on [colour, size]: Pipeline",
        "    simpleimputer: SimpleImputer (2 columns, strategy=constant)",
        "    onehotencoder: OneHotEncoder (2 columns, handle_unknown=ignore)",
        "mlpclassifier: MLPClassifier (fastwb)"]
    status, out, err = run_cli(["info", tmp_path / "model.fwb"])
    assert status == 0, err
    assert "Pipeline, file format 1" in out
    assert "\n  mlpclassifier: MLPClassifier (fastwb)\n" in out
    assert "classes: 3: cat, dog, emu" in out
    assert "features: 6: age, income, height, colour, size, score" in out
    assert f"network: {model[-1].n_features_in_} -> 6 -> 3 (float32" in out


def test_info_of_a_target_regressor(tmp_path):
    model = TransformedTargetRegressor(make_pipeline(StandardScaler(), regressor()),
                                       transformer=MinMaxScaler())
    model.fit(numbers(), np.arange(50.0))
    fastwb.save(model, tmp_path / "model.fwb")
    status, out, err = run_cli(["info", tmp_path / "model.fwb"])
    assert status == 0, err
    assert (f"steps (fitted with scikit-learn {sklearn.__version__}):\n"
            "  TransformedTargetRegressor\n    regressor: Pipeline\n"
            "      standardscaler: StandardScaler (4 columns)\n"
            "      mlpregressor: MLPRegressor (fastwb)\n"
            "    target: MinMaxScaler (1 column)\n") in out
    assert "network: 4 -> 6 -> 1" in out and "features: 4\n" in out


def test_predict_command_with_a_saved_pipeline(tmp_path):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(np.nan_to_num(numbers()), columns=["w", "x", "y", "z"])
    ct = ColumnTransformer([("scale", StandardScaler(), ["x", "z"])], remainder="passthrough")
    model = make_pipeline(ct, classifier()).fit(X, labels())
    fastwb.save(model, tmp_path / "model.fwb")
    X[list(reversed(X.columns))].assign(label=labels()).to_csv(tmp_path / "data.csv",
                                                                index=False)
    status, out, err = run_cli(["predict", tmp_path / "model.fwb", tmp_path / "data.csv",
                                "--target", "label", "--proba"])
    assert status == 0, err
    frame = pd.read_csv(io.StringIO(out))
    np.testing.assert_array_equal(frame["prediction"], model.predict(X))
    np.testing.assert_allclose(frame[["proba_cat", "proba_dog", "proba_emu"]],
                               model.predict_proba(X), rtol=1e-6)
    assert f"accuracy on 50 samples of {tmp_path / 'data.csv'}: " \
           f"{model.score(X, labels()):.4f}" in err
    # a regression pipeline with a transformed target, from an array without names
    target = TransformedTargetRegressor(make_pipeline(MinMaxScaler(), regressor()),
                                        transformer=StandardScaler())
    target.fit(X.to_numpy(), X["x"].to_numpy() * 10)
    fastwb.save(target, tmp_path / "target.fwb")
    np.savez(tmp_path / "data.npz", X=X.to_numpy(), y=X["x"].to_numpy() * 10)
    status, out, err = run_cli(["predict", tmp_path / "target.fwb", tmp_path / "data.npz"])
    assert status == 0, err
    np.testing.assert_allclose(np.loadtxt(io.StringIO(out), skiprows=1),
                               target.predict(X.to_numpy()), rtol=1e-6)


def test_predict_command_refuses_a_transformer_alone(tmp_path):
    fastwb.save(StandardScaler().fit(X), tmp_path / "scaler.fwb")
    np.savez(tmp_path / "data.npz", X=X)
    status, out, err = run_cli(["predict", tmp_path / "scaler.fwb", tmp_path / "data.npz"])
    assert status == 1 and out == ""
    assert err == (f"fastwb: error: {tmp_path / 'scaler.fwb'} holds a StandardScaler, which "
                   "transforms data but does not predict\n")


def test_pipelines_without_warnings(tmp_path):
    """Saving and loading a pipeline warns of nothing (no refit, no feature-name noise)."""
    model = make_pipeline(preprocessing_by_name(), classifier()).fit(table(), labels())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        loaded = roundtrip(model, tmp_path)
        loaded.predict(table(seed=1))


def test_info_without_scikit_learn_shows_the_steps_from_the_header(tmp_path, monkeypatch):
    from fastwb import _pipeline_state
    model = make_pipeline(StandardScaler(), OneHotEncoder(handle_unknown="ignore"),
                          classifier()).fit(X[:, :2].round(), Y)
    fastwb.save(model, tmp_path / "model.fwb")

    def missing():
        raise ImportError("No module named 'sklearn'", name="sklearn")

    monkeypatch.setattr(_pipeline_state, "_classes", missing)
    with pytest.raises(ImportError):
        fastwb.load(tmp_path / "model.fwb")
    status, out, err = run_cli(["info", tmp_path / "model.fwb"])
    assert status == 0, err
    assert out.endswith("  standardscaler: StandardScaler (2 columns)\n"
                        "  onehotencoder: OneHotEncoder (2 columns, handle_unknown=ignore)\n"
                        "  mlpclassifier: MLPClassifier (fastwb)\n")


@pytest.mark.parametrize("values, problem", [
    (["a", "a\x00", "b"], "ends in a NUL character"),
    ([2**63 + 5, 1, 3], "integers beyond 64 bits"),
])
def test_categories_a_file_cannot_hold_exactly_are_refused(values, problem, tmp_path):
    """Fixed-width text drops trailing NULs, int64 stops at 2**63: saving them
    would load another encoder, so the save is refused, naming the step."""
    X = np.array(values * 10, dtype=object).reshape(-1, 1)
    encoder = OneHotEncoder(handle_unknown="ignore").fit(X)
    with pytest.raises(ValueError, match=problem):
        fastwb.save(encoder, tmp_path / "encoder.fwb")
    assert not (tmp_path / "encoder.fwb").exists()

