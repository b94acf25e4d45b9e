"""ONNX export: onnxruntime runs what fastwb.onnx.to_onnx writes and gets fastwb's outputs.

Tolerances: float32 within 1e-5 relative, with an absolute floor of 1e-6 for
values near zero (onnxruntime's sigmoid, tanh and erf are vectorised
approximations a few float32 ulps from fastwb's); float64 within 1e-12
relative, absolute 1e-14 (exp(z) - 1 and log(1 + exp(-|z|)), which ONNX
writes without expm1 and log1p, lose their relative accuracy near zero).
Labels must be equal.
"""
import warnings

import numpy as np
import pytest

pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install 'fastwb[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="the export is checked by onnxruntime")
pytest.importorskip("skl2onnx", reason="pipelines convert through skl2onnx")
pytest.importorskip("sklearn")

import onnx  # noqa: E402
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import (FunctionTransformer, MaxAbsScaler, MinMaxScaler,  # noqa: E402
                                   OneHotEncoder, RobustScaler, StandardScaler)

import fastwb  # noqa: E402
from fastwb.cli import main  # noqa: E402
from fastwb._onnx_graph import OLDEST_OPSET  # noqa: E402
from fastwb.onnx import DEFAULT_OPSET, register_skl2onnx, to_onnx  # noqa: E402
from fastwb.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

HIDDEN = ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "elu", "selu", "gelu",
          "softplus", "swish")
DTYPES = ("float32", "float64")
#: onnxruntime 1.23, the oldest CI runs, reads opsets up to 23
NEWEST_RUN = min(23, onnx.defs.onnx_opset_version())

# the estimators here train for a few epochs only: the export is what is checked
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def run(model: onnx.ModelProto, feeds) -> list:
    """onnxruntime's outputs; a single array is fed as the input X."""
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    if not isinstance(feeds, dict):
        feeds = {"X": feeds}
    return session.run(None, feeds)


def assert_agrees(got, want, dtype) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    assert got.dtype == np.dtype(dtype)
    if np.dtype(dtype) == np.float32:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def oldest_opset(activation: str) -> int:
    """The oldest opset that writes ``activation``: gelu needs Erf or Where (9)."""
    return 9 if activation == "gelu" else OLDEST_OPSET


def data(n=64, n_features=5, seed=0):
    return np.random.default_rng(seed).normal(scale=2.0, size=(n, n_features))


# --- networks -----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("opset", ["oldest", 9, DEFAULT_OPSET])
def test_network_each_hidden_activation(activation, dtype, opset):
    net = fastwb.Network([5, 16, 8, 3], activation=activation, dtype=dtype, seed=1)
    X = data().astype(dtype)
    model = to_onnx(net, opset=oldest_opset(activation) if opset == "oldest" else opset)
    assert [o.name for o in model.graph.output] == ["Y"]
    assert_agrees(run(model, X)[0], net.predict(X), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("opset", ["oldest", 9, DEFAULT_OPSET])
def test_each_activation_alone_over_a_wide_range(activation, dtype, opset):
    """One unit, weights 1 and biases 0: the output is the activation itself, from
    z = -40 (where gelu and sigmoid underflow towards 0) to 40."""
    net = fastwb.Network([1, 1, 1], activation=activation, dtype=dtype, seed=0)
    net.parameters = [1, 0, 1, 0]
    z = np.concatenate([np.linspace(-40, 40, 8001), [-1e-6, 1e-6, 0.0]]).astype(dtype)[:, None]
    opset = oldest_opset(activation) if opset == "oldest" else opset
    assert_agrees(run(to_onnx(net, opset=opset), z)[0], net.predict(z), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss, output", [
    ("softmax_cross_entropy", None), ("binary_cross_entropy", None), ("poisson", None),
    ("mse", None), ("mse", "tanh"), ("huber", "sigmoid"), ("mae", "softplus")])
def test_network_each_output_function(loss, output, dtype):
    net = fastwb.Network([5, 12, 3], activation="tanh", output_activation=output, loss=loss,
                         dtype=dtype, seed=2)
    X = data().astype(dtype)
    assert_agrees(run(to_onnx(net), X)[0], net.predict(X), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_network_with_an_activation_per_layer(dtype):
    layers = [fastwb.Dense(5, 9, activation="gelu"), fastwb.Dense(9, 7, activation="leaky_relu"),
              fastwb.Dense(7, 6, activation="selu"), fastwb.Dense(6, 4, activation="swish"),
              fastwb.Dense(4, 2)]
    net = fastwb.Network(layers, loss="softmax_cross_entropy", dtype=dtype, seed=3)
    X = data().astype(dtype)
    assert_agrees(run(to_onnx(net), X)[0], net.predict(X), dtype)


def test_network_exported_in_the_other_dtype():
    net = fastwb.Network([5, 8, 2], activation="elu", dtype="float64", seed=4)
    X = data()
    got = run(to_onnx(net, dtype="float32"), X.astype(np.float32))[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, net.predict(X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opset", [7, 9, 11, 13, 17, 20, NEWEST_RUN])
def test_every_opset_from_the_oldest(opset):
    net = fastwb.Network([5, 8, 8, 3], activation="leaky_relu", loss="softmax_cross_entropy",
                         seed=5)
    X = data().astype(np.float32)
    model = to_onnx(net, opset=opset)
    assert model.opset_import[0].version == opset
    assert_agrees(run(model, X)[0], net.predict(X), "float32")


def test_gelu_uses_the_gelu_operator_from_opset_20_and_erf_before():
    net = fastwb.Network([5, 8, 1], activation="gelu", seed=6)
    assert "Gelu" in {n.op_type for n in to_onnx(net, opset=20).graph.node}
    ops = {n.op_type for n in to_onnx(net, opset=19).graph.node}
    assert "Erf" in ops and "Gelu" not in ops


# --- estimators ---------------------------------------------------------------------

def _classification_targets(kind, n, rng):
    if kind == "binary":
        return rng.integers(0, 2, n) * 5 - 1               # classes -1 and 4
    if kind == "binary-text":
        return np.array(["no", "yes"])[rng.integers(0, 2, n)]
    if kind == "multiclass":
        return np.array(["cat", "dog", "émeu"])[rng.integers(0, 3, n)]
    return rng.integers(0, 2, (n, 3))                      # multilabel


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["binary", "binary-text", "multiclass", "multilabel"])
def test_classifier(kind, dtype):
    rng = np.random.default_rng(7)
    X = data(80)
    y = _classification_targets(kind, len(X), rng)
    clf = MLPClassifier((12, 6), activation=["tanh", "leaky_relu"], max_iter=30,
                        random_state=0, dtype=dtype).fit(X, y)
    model = to_onnx(clf)
    assert [o.name for o in model.graph.output] == ["label", "probabilities"]
    label, proba = run(model, X.astype(dtype))
    np.testing.assert_array_equal(label, clf.predict(X))
    assert_agrees(proba, clf.predict_proba(X), dtype)


def test_classifier_fitted_on_one_class_predicts_it():
    X = data(20)
    clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, np.full(len(X), 3))
    label, proba = run(to_onnx(clf), X.astype(np.float32))
    np.testing.assert_array_equal(label, clf.predict(X))
    assert_agrees(proba, clf.predict_proba(X), "float32")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_outputs, loss", [(1, "squared_error"), (3, "squared_error"),
                                             (2, "poisson"), (1, "huber")])
def test_regressor(n_outputs, loss, dtype):
    rng = np.random.default_rng(8)
    X = data(70)
    y = np.abs(rng.normal(size=(len(X), n_outputs)))
    reg = MLPRegressor(loss=loss, hidden_layer_sizes=(10,), activation="softplus", max_iter=30,
                       random_state=0, dtype=dtype).fit(X, y[:, 0] if n_outputs == 1 else y)
    model = to_onnx(reg)
    got = run(model, X.astype(dtype))[0]
    assert got.shape == (len(X), n_outputs)      # skl2onnx's regressors: (N, 1) for one target
    assert_agrees(got, reg.predict(X).reshape(len(X), n_outputs), dtype)


# --- pipelines ----------------------------------------------------------------------

def _frame(n=90, seed=9):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"size": rng.normal(50, 20, n), "weight": rng.normal(0.5, 0.1, n),
                          "colour": rng.choice(["red", "green", "blue"], n),
                          "shape": rng.choice(["round", "square"], n)})
    frame.loc[::7, "weight"] = np.nan
    target = np.where(frame["colour"] == "red", "bad", "good")
    return frame, target


def _feeds(frame, dtype=np.float32) -> dict:
    return {name: (frame[[name]].to_numpy(dtype) if frame[name].dtype.kind == "f"
                   else frame[[name]].to_numpy(object)) for name in frame.columns}


@pytest.mark.parametrize("scaler", [StandardScaler(), MinMaxScaler(), MaxAbsScaler(),
                                    RobustScaler(), SimpleImputer()])
def test_pipeline_with_each_numeric_step(scaler):
    X = data(80) * [1, 10, 100, 0.1, 1] + 3
    y = (X[:, 0] > 3).astype(int)
    pipe = make_pipeline(scaler, MLPClassifier((8,), max_iter=30, random_state=0)).fit(X, y)
    X_test = X.copy()
    X_test[::5, 1] = np.nan if isinstance(scaler, SimpleImputer) else X_test[::5, 1]
    label, proba = run(to_onnx(pipe), X_test.astype(np.float32))
    np.testing.assert_array_equal(label, pipe.predict(X_test))
    # the pipeline's own scalers compute in float64, onnxruntime's in float32
    np.testing.assert_allclose(proba, pipe.predict_proba(X_test), rtol=1e-5, atol=1e-6)


def test_pipeline_in_float64():
    X = data(60) * 30
    y = X[:, :2] @ [1.0, -2.0]
    pipe = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(8,), max_iter=30,
                                                        random_state=0, dtype="float64"))
    pipe.fit(X, y)
    got = run(to_onnx(pipe), X)[0]
    assert_agrees(got[:, 0], pipe.predict(X), "float64")


def test_pipeline_of_a_one_hot_encoder_on_text():
    rng = np.random.default_rng(10)
    X = rng.choice(["a", "b", "c"], (60, 2)).astype(object)
    y = (X[:, 0] == "a").astype(int)
    pipe = make_pipeline(OneHotEncoder(), MLPClassifier((6,), max_iter=50, random_state=0))
    pipe.fit(X, y)
    for sample in (X, None):           # the input's type from X, or from the fitted categories
        model = to_onnx(pipe, X=sample)
        assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.STRING
        label, proba = run(model, X)
        np.testing.assert_array_equal(label, pipe.predict(X))
        assert_agrees(proba, pipe.predict_proba(X), "float32")


def test_pipeline_with_a_column_transformer_on_a_frame():
    frame, target = _frame()
    columns = ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), ["size", "weight"]),
        ("text", OneHotEncoder(handle_unknown="ignore"), ["colour", "shape"])])
    pipe = make_pipeline(columns, MLPClassifier((8,), max_iter=40, random_state=0))
    pipe.fit(frame, target)
    unseen = frame.copy()
    unseen.loc[::4, "colour"] = "purple"                  # unknown: ignored, as in scikit-learn
    for sample in (frame, None):
        model = to_onnx(pipe, X=sample)
        assert [i.name for i in model.graph.input] == list(frame.columns)
        label, proba = run(model, _feeds(unseen))
        np.testing.assert_array_equal(label, pipe.predict(unseen))
        np.testing.assert_allclose(proba, pipe.predict_proba(unseen), rtol=1e-5, atol=1e-6)


def test_command_line_model_with_a_text_column_and_missing_values(tmp_path, capsys):
    """train's ColumnTransformer picks columns by index, its model has feature names:
    one input per named column, text as strings, predictions as predict writes them."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(14)
    frame = pd.DataFrame({"a": rng.normal(size=60).round(3), "b": rng.choice(["x", "y"], 60),
                          "c": rng.normal(20, 5, 60).round(3), "y": rng.normal(size=60)})
    frame.loc[::9, "c"] = np.nan
    frame.to_csv(tmp_path / "d.csv", index=False)
    model_file, onnx_file = str(tmp_path / "model.fwb"), str(tmp_path / "m.onnx")
    assert main(["train", str(tmp_path / "d.csv"), "--target", "y", "--epochs", "5",
                 "--out", model_file]) == 0
    assert main(["export", model_file, "--onnx", onnx_file]) == 0
    assert main(["predict", model_file, str(tmp_path / "d.csv"), "--out",
                 str(tmp_path / "p.csv")]) == 0
    capsys.readouterr()
    model = onnx.load(onnx_file)
    assert [i.name for i in model.graph.input] == ["a", "b", "c"]
    features = frame.drop(columns="y")
    got = run(model, _feeds(features))[0][:, 0]
    np.testing.assert_allclose(got, fastwb.load(model_file).predict(features.to_numpy(object)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, pd.read_csv(tmp_path / "p.csv")["prediction"],
                               rtol=1e-5, atol=1e-6)


def test_sample_without_the_columns_a_column_transformer_takes_is_refused():
    frame, target = _frame()
    pipe = make_pipeline(ColumnTransformer([("text", OneHotEncoder(), ["colour"])]),
                         MLPClassifier((4,), max_iter=2)).fit(frame, target)
    with pytest.raises(ValueError, match="takes a column 'colour' that its input has not"):
        to_onnx(pipe, X=frame.rename(columns={"colour": "hue"}))


def test_readme_pipeline_on_an_object_array():
    """Columns by index of an unnamed object array: inputs column_0, column_1."""
    X = np.array([[5.1, "red"], [np.nan, "blue"], [6.3, "red"], [4.9, "green"]] * 5,
                 dtype=object)
    y = [0, 1, 1, 0] * 5
    prep = ColumnTransformer([("numbers", make_pipeline(SimpleImputer(), StandardScaler()),
                               [0]), ("words", OneHotEncoder(handle_unknown="ignore"), [1])])
    pipe = make_pipeline(prep, MLPClassifier(hidden_layer_sizes=(8,), max_iter=50,
                                             random_state=0)).fit(X, y)
    feeds = {"column_0": X[:, :1].astype(np.float32), "column_1": X[:, 1:]}
    for sample in (None, X):
        model = to_onnx(pipe, X=sample)
        assert [i.name for i in model.graph.input] == ["column_0", "column_1"]
        label, proba = run(model, feeds)
        np.testing.assert_array_equal(label, pipe.predict(X))
        np.testing.assert_allclose(proba, pipe.predict_proba(X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("numbers, text", [
    ([True, False, True, False], [False, True, False, True]), (np.array([0, 2]), [-3, -1]),
    (slice(0, 4, 2), slice(1, None, 2)), (["size", "weight"], slice("colour", "shape")),
    (slice("size", "weight"), ["colour", "shape"])])
def test_column_transformer_columns_of_every_kind(numbers, text):
    """Masks, numpy and negative indices, slices of indices and of names (both ends
    included): skl2onnx finds them all."""
    by_name = isinstance(numbers, slice) and isinstance(numbers.start, str) or isinstance(
        numbers, list) and isinstance(numbers[0], str)
    frame = _frame()[0][["size", "weight", "colour", "shape"] if by_name
                        else ["size", "colour", "weight", "shape"]]
    sample = frame if by_name else frame.to_numpy(object)
    prep = ColumnTransformer([("numbers", SimpleImputer(), numbers),
                              ("text", OneHotEncoder(handle_unknown="ignore"), text)])
    pipe = make_pipeline(prep, MLPRegressor(hidden_layer_sizes=(6,), max_iter=20,
                                            random_state=0))
    pipe.fit(sample, np.arange(len(frame), dtype=float))
    model = to_onnx(pipe)
    assert [i.name for i in model.graph.input] == (
        list(frame.columns) if by_name else [f"column_{j}" for j in range(4)])
    feeds = dict(zip([i.name for i in model.graph.input],
                     _feeds(frame).values()))
    assert_agrees(run(model, feeds)[0][:, 0], pipe.predict(sample), "float32")


@pytest.mark.parametrize("transformer", [
    StandardScaler(), StandardScaler(with_mean=False), StandardScaler(with_std=False),
    StandardScaler(with_mean=False, with_std=False), MinMaxScaler(),
    MinMaxScaler(feature_range=(-2, 3), clip=True), MaxAbsScaler(), RobustScaler(),
    RobustScaler(with_centering=False), RobustScaler(with_scaling=False),
    RobustScaler(with_centering=False, with_scaling=False), None])
def test_transformed_target_regressor(transformer):
    X = data(80)
    y = 500 + 40 * X[:, 0] - 25 * X[:, 1]
    model = TransformedTargetRegressor(
        make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(8,), max_iter=60,
                                                     random_state=0, dtype="float64")),
        transformer=transformer).fit(X, y)
    got = run(to_onnx(model), X)[0]
    assert got.shape == (len(X), 1)
    assert_agrees(got[:, 0], model.predict(X), "float64")


def test_transformed_target_regressor_in_a_pipeline_float32():
    X = data(80)
    y = np.stack([100 * X[:, 0], X[:, 1] - 7], axis=1)
    pipe = make_pipeline(MinMaxScaler(), TransformedTargetRegressor(
        MLPRegressor(hidden_layer_sizes=(8,), max_iter=60, random_state=0),
        transformer=StandardScaler())).fit(X, y)
    got = run(to_onnx(pipe), X.astype(np.float32))[0]
    np.testing.assert_allclose(got, pipe.predict(X), rtol=1e-5, atol=1e-4)   # y ~ 100s


def test_transformed_target_regressor_with_a_function_is_refused():
    X = data(30)
    model = TransformedTargetRegressor(MLPRegressor(hidden_layer_sizes=(4,), max_iter=5),
                                       func=np.log1p, inverse_func=np.expm1,
                                       check_inverse=False).fit(X, np.abs(X[:, 0]))
    with pytest.raises(TypeError, match="FunctionTransformer with a func"):
        to_onnx(model)
    assert isinstance(model.transformer_, FunctionTransformer)


def test_a_users_pipeline_converts_with_skl2onnx_itself():
    import skl2onnx
    register_skl2onnx()
    X = data(60)
    y = np.array(["low", "high"])[(X[:, 0] > 0).astype(int)]
    pipe = make_pipeline(StandardScaler(), MLPClassifier((8,), activation="gelu", max_iter=30,
                                                         random_state=0)).fit(X, y)
    X32 = X.astype(np.float32)
    zipped = skl2onnx.to_onnx(pipe, X32[:1])          # skl2onnx's default: ZipMap
    label, dictionaries = run(zipped, X32)
    np.testing.assert_array_equal(label, pipe.predict(X))
    expected = pipe.predict_proba(X)
    for row, want in zip(dictionaries, expected):
        np.testing.assert_allclose([row[c] for c in pipe.classes_], want, rtol=1e-5, atol=1e-6)
    plain = skl2onnx.convert_sklearn(
        pipe, initial_types=[("X", skl2onnx.common.data_types.FloatTensorType([None, 5]))],
        options={id(pipe[-1]): {"zipmap": False}})
    label, proba = run(plain, X32)
    np.testing.assert_array_equal(label, pipe.predict(X))
    assert_agrees(proba, expected, "float32")


def test_zipmap_on_request():
    X = data(40)
    clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, (X[:, 0] > 0).astype(int))
    label, dictionaries = run(to_onnx(clf, zipmap=True), X.astype(np.float32))
    assert sorted(dictionaries[0]) == [0, 1]
    np.testing.assert_array_equal(label, clf.predict(X))


@pytest.mark.parametrize("y, message", [
    (lambda X: X[:, 0] > 0, "integer or text classes; this classifier's are bool"),
    (lambda X: np.full(len(X), 3), "fitted on one class")])
def test_zipmap_refused_where_it_cannot_map_the_classes(y, message):
    X = data(40)
    clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, y(X))
    with pytest.raises(ValueError, match=message):
        to_onnx(clf, zipmap=True)
    label, _ = run(to_onnx(clf), X.astype(np.float32))     # without ZipMap: as predict
    np.testing.assert_array_equal(label, clf.predict(X))


# --- writing, the command line, quantization -----------------------------------------

def test_path_gets_the_model_returned(tmp_path):
    net = fastwb.Network([3, 4, 2], seed=11)
    model = to_onnx(net, tmp_path / "net.onnx")
    assert onnx.load(str(tmp_path / "net.onnx")) == model
    onnx.checker.check_model(str(tmp_path / "net.onnx"))


def test_command_line_export(tmp_path, capsys):
    X = data(50)
    clf = MLPClassifier((6,), max_iter=20, random_state=0).fit(X, (X[:, 1] > 0).astype(int))
    fastwb.save(clf, tmp_path / "model.fwb")
    assert main(["export", str(tmp_path / "model.fwb"), "--onnx", str(tmp_path / "m.onnx"),
                 "--opset", "13"]) == 0
    assert "(ONNX opset 13, " in capsys.readouterr().out
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert model.opset_import[0].version == 13
    label, proba = run(model, X.astype(np.float32))
    np.testing.assert_array_equal(label, clf.predict(X))
    assert_agrees(proba, clf.predict_proba(X), "float32")
    assert main(["export", str(tmp_path / "model.fwb"), "--onnx", str(tmp_path / "q.onnx"),
                 "--quantize", "int8"]) == 0
    label, _ = run(onnx.load(str(tmp_path / "q.onnx")), X.astype(np.float32))
    assert np.mean(label == clf.predict(X)) > 0.9


@pytest.mark.parametrize("model, options, message", [
    ("net.fwb", ["--opset", "6"], "opset must be from 7"),
    ("net.fwb", ["--opset", "10", "--quantize", "int8"], "quantize needs ONNX opset 11"),
    ("gone.fwb", [], "model file not found"),
    ("pipe.fwb", [], "Imputer cannot fill missing values with a string"),    # skl2onnx's
])
def test_command_line_export_errors(tmp_path, capsys, model, options, message):
    fastwb.save(fastwb.Network([3, 4, 2], seed=12), tmp_path / "net.fwb")
    X = np.array([["red"], ["blue"], [np.nan]] * 4, dtype=object)
    pipe = make_pipeline(SimpleImputer(strategy="constant", fill_value="?"), OneHotEncoder(),
                         MLPRegressor(hidden_layer_sizes=(3,), max_iter=2))
    fastwb.save(pipe.fit(X, np.arange(12.0)), tmp_path / "pipe.fwb")
    assert main(["export", str(tmp_path / model), "--onnx", str(tmp_path / "x.onnx"),
                 *options]) == 1
    error = capsys.readouterr().err
    assert error.startswith("fastwb: error:") and "Traceback" not in error
    assert message in error
    assert not (tmp_path / "x.onnx").exists()


def _digits_model():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = X / 16
    clf = MLPClassifier((64,), max_iter=40, random_state=0).fit(X[:1200], y[:1200])
    return clf, X[1200:], y[1200:]


@pytest.mark.parametrize("weights", ["int8", "uint8"])
def test_quantized_model_runs_and_stays_close(weights):
    clf, X, y = _digits_model()
    float_model = to_onnx(clf)
    quantized = to_onnx(clf, quantize=weights)
    ops = {n.op_type for n in quantized.graph.node}
    assert "MatMulInteger" in ops and "MatMul" not in ops
    expected = np.int8 if weights == "int8" else np.uint8
    kinds = {onnx.numpy_helper.to_array(t).dtype for t in quantized.graph.initializer}
    assert np.dtype(expected) in kinds
    assert len(quantized.SerializeToString()) < len(float_model.SerializeToString()) / 2
    label, proba = run(quantized, X.astype(np.float32))
    accuracy = np.mean(label == y)
    assert accuracy > np.mean(clf.predict(X) == y) - 0.03
    assert np.abs(proba - clf.predict_proba(X)).max() < 0.2


# --- refused -------------------------------------------------------------------------

def test_unfitted_estimator_is_refused():
    with pytest.raises(NotFittedError):
        to_onnx(MLPClassifier())
    with pytest.raises(NotFittedError):
        to_onnx(make_pipeline(StandardScaler(), MLPRegressor()))
    X = data(30)
    fitted = MLPRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(X, X[:, 0])
    with pytest.raises(NotFittedError, match="StandardScaler"):
        to_onnx(make_pipeline(StandardScaler(), fitted))     # fitted alone, not the scaler


@pytest.mark.parametrize("model", ["net.fwb", np.zeros((2, 2)), None])
def test_unsupported_model_type_is_refused(model):
    with pytest.raises(TypeError, match="converts a fastwb Network"):
        to_onnx(model)


def test_scikit_learns_own_models_are_left_to_skl2onnx():
    X = data(30)
    fitted = LogisticRegression().fit(X, X[:, 0] > 0)
    with pytest.raises(TypeError, match="LogisticRegression"):
        to_onnx(fitted)
    with pytest.raises(TypeError, match="ends in LogisticRegression"):
        to_onnx(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, X[:, 0] > 0))


@pytest.mark.parametrize("opset, message", [
    (6, "opset must be from 7"), (10_000, "opset must be from 7"),
    (8, r"gelu activation needs ONNX opset 9 or later \(operator Erf\)"),
    (2.5, "opset must be an integer"), (True, "opset must be an integer")])
def test_bad_opset_is_refused(opset, message):
    net = fastwb.Network([3, 4, 2], activation="gelu", seed=13)
    with pytest.raises((ValueError, TypeError), match=message):
        to_onnx(net, opset=opset)


def test_pipeline_opset_beyond_skl2onnx_is_refused():
    import skl2onnx
    newest = skl2onnx.get_latest_tested_opset_version()
    if newest >= onnx.defs.onnx_opset_version():
        pytest.skip("skl2onnx writes every opset the installed onnx knows")
    X = data(30)
    pipe = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(3,), max_iter=2))
    pipe.fit(X, X[:, 0])
    with pytest.raises(ValueError, match=f"writes opsets up to {newest}"):
        to_onnx(pipe, opset=newest + 1)
    run(to_onnx(pipe, opset=newest), X.astype(np.float32))


def test_bad_path_is_refused(tmp_path):
    net = fastwb.Network([3, 4, 2], seed=14)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        to_onnx(net, tmp_path / "missing" / "net.onnx")
    with pytest.raises(IsADirectoryError):
        to_onnx(net, tmp_path)
    with pytest.raises(TypeError, match="path must be a file name"):
        to_onnx(net, 3)


@pytest.mark.parametrize("options, error, message", [
    (dict(dtype="int32"), ValueError, "dtype must be float32 or float64"),
    (dict(quantize="int4"), ValueError, "quantize must be None or one of int8, uint8"),
    (dict(quantize="int8", dtype="float64"), ValueError, "dtype must be float32"),
    (dict(quantize="int8", opset=10), ValueError, "quantize needs ONNX opset 11"),
    (dict(zipmap="rows"), ValueError, "zipmap must be")])
def test_bad_options_are_refused(options, error, message):
    with pytest.raises(error, match=message):
        to_onnx(fastwb.Network([3, 4, 2], seed=15), **options)


def test_pipeline_needs_to_know_its_input():
    pipe = make_pipeline(FunctionTransformer(), MLPRegressor(hidden_layer_sizes=(3,),
                                                             max_iter=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(data(20).tolist(), np.arange(20.0))
    del pipe[0].n_features_in_
    with pytest.raises(ValueError, match="needs a sample X"):
        to_onnx(pipe)
