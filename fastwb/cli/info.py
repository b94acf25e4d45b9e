"""``fastwb info``: describe a saved model from its header (for a pipeline: its
steps, what its preprocessing does, and the estimator inside).

The model is built first, as ``fastwb.load`` builds it, so that a crafted or
inconsistent file is refused with ``ModelFileError`` before its config is
shown. Where scikit-learn is missing an estimator's file is described from its
header alone: the estimator parameters and fitted scalars are read back with
``fastwb._estimator_params.decode``, the decoder ``fastwb.load`` uses. A saved
scikit-learn Pipeline is shown one step a line (``read_header``'s "steps"),
then, where scikit-learn is installed, what its preprocessing does
(``fastwb.cli.preprocessing.describe``) and the fastwb estimator at its end as
above.
"""
from __future__ import annotations

import argparse
import textwrap

from fastwb import _pipeline_state, saving
from fastwb._estimator_params import decode
from fastwb.cli import preprocessing
from fastwb.cli.tables import check_readable, shorten

#: The estimator parameters shown, in this order (those the file has).
SHOWN_PARAMETERS = ("hidden_layer_sizes", "activation", "solver", "optimizer", "alpha",
                    "batch_size", "learning_rate", "learning_rate_init", "max_iter",
                    "early_stopping", "dropout", "class_weight", "dtype", "random_state")


def run(args: argparse.Namespace) -> None:
    """Print what ``args.model`` holds: kind, versions, layers, parameters, training."""
    check_readable(args.model, "model file")
    header = saving.read_header(args.model)
    try:
        # built in full, so that a crafted file is refused as load refuses it, before
        # anything below trusts its config (the labels and names are arrays, too)
        model = saving.load(args.model)
    except ImportError:
        model = None
    kind, config, arrays = header["kind"], header["config"], header["arrays"]
    print(f"{args.model}: {'fastwb network' if kind == 'network' else kind}, file format "
          f"{header['format_version']}, written by fastwb {header['fastwb_version']}")
    outer = None                # a pipeline around the estimator described below
    if kind in _pipeline_state.KINDS:
        version = config.get("sklearn_version")
        print(f"steps (fitted with scikit-learn {version if isinstance(version, str) else '?'}):")
        for line in header["steps"]:
            print(f"  {line}")
        inner = _estimator_node(config.get("model"))
        if model is None or inner is None:  # no scikit-learn: the steps are all there is
            return
        for line in preprocessing.describe(model):
            print(textwrap.fill(f"preprocessing: {line}", width=79, subsequent_indent="  ",
                                break_long_words=False))
        outer, model = model, preprocessing.estimator_of(model)
        kind, config, prefix = inner
        arrays = {name[len(prefix):]: spec for name, spec in arrays.items()
                  if name.startswith(prefix)}
    if kind == "network":
        network = config.get("network") or {}
        optimizer = config.get("optimizer")
        attributes = {}
    else:
        params = _decoded(args.model, kind, config.get("params", {}))
        shown = [f"{name}={params[name]!r}" for name in SHOWN_PARAMETERS
                 if name in params and not (name == "optimizer" and params[name] is None)]
        print(textwrap.fill("parameters: " + ", ".join(shown), width=79,
                            subsequent_indent="  ", break_long_words=False))
        if not config.get("fitted"):
            print("not fitted")
            return
        network = (config.get("network") or {}).get("network") or {}
        optimizer = None
        attributes = {name: _decoded(args.model, kind, value)
                      for name, value in (config.get("attributes") or {}).items()}
    layers = network.get("layers") or []
    total = 0
    sizes = [layers[0].get("n_in", "?")] + [layer.get("n_out", "?") for layer in layers] \
        if layers else ["?"]
    print(f"network: {' -> '.join(map(str, sizes))} ({network.get('dtype', '?')}, "
          f"loss {network.get('loss', '?')})")
    print(f"  {'layer':<7}{'inputs':>8}{'outputs':>9}  {'activation':<12}{'dropout':>8}"
          f"{'parameters':>12}")
    for i, layer in enumerate(layers):
        n_in, n_out = layer.get("n_in", 0), layer.get("n_out", 0)
        count = n_in * n_out + n_out
        total += count
        print(f"  {i + 1:<7}{n_in:>8}{n_out:>9}  {layer.get('activation')!s:<12}"
              f"{layer.get('dropout') or 0:>8g}{count:>12,}")
    print(f"  {'total':<7}{'':>8}{'':>9}  {'':<12}{'':>8}{total:>12,}")
    if optimizer:
        name = (optimizer.get("config") or {}).get("name", "?")
        print(f"optimizer: {name}, {optimizer.get('step', 0)} steps, "
              f"{optimizer.get('epoch', 0)} epochs")
    if attributes:
        summary = [f"{attributes.get('n_iter_', '?')} epochs"]
        if isinstance(attributes.get("loss_"), float):
            summary.append(f"final loss {attributes['loss_']:.6g}")
        if isinstance(attributes.get("best_validation_score_"), float):
            summary.append(f"best validation score {attributes['best_validation_score_']:.4f}")
        print("trained: " + ", ".join(summary))
    if "classes_" in arrays:
        count = arrays["classes_"]["shape"][0] if arrays["classes_"]["shape"] else 0
        labels = f": {shorten(map(str, model.classes_), 10)}" if model is not None else ""
        print(f"classes: {count}{labels}")
    n_features = attributes.get("n_features_in_") or (layers[0].get("n_in") if layers else "?")
    names = getattr(model, "feature_names_in_", None) if "feature_names_in_" in arrays else None
    if outer is not None:       # the columns of the data, before the preprocessing
        n_features, names = outer.n_features_in_, getattr(outer, "feature_names_in_", None)
    if names is not None:
        print(f"features: {n_features}: {shorten(map(str, names), 10)}")
    else:
        print(f"features: {n_features}")


def _estimator_node(node) -> tuple[str, dict, str] | None:
    """(kind, config, array prefix) of the fastwb estimator in a pipeline
    file's config (taken as it comes: a crafted one gives None), or None."""
    prefix = ""
    for _ in range(64):           # as deep as a file may nest them
        if not isinstance(node, dict):
            return None
        cls = node.get("class")
        if cls in ("MLPClassifier", "MLPRegressor") and isinstance(node.get("state"), dict):
            return cls, node["state"], prefix
        if cls == "TransformedTargetRegressor":
            node, prefix = node.get("regressor"), prefix + "regressor/"
        elif cls == "Pipeline" and isinstance(node.get("steps"), list) and node["steps"]:
            last = len(node["steps"]) - 1
            step = node["steps"][last]
            node, prefix = step.get("step") if isinstance(step, dict) else None, \
                f"{prefix}steps/{last}/"
        else:
            return None
    return None


def _decoded(path: str, kind: str, value):
    """``decode(value)``; a value it cannot read is the file's fault, as in ``fastwb.load``."""
    try:
        return decode(value)
    except ValueError as error:
        raise saving.ModelFileError(f"{path} describes a {kind} that cannot be built: "
                                    f"{error}") from None
