"""``fastwb info``: describe a saved model.

The file is read once and the model built from it, as ``fastwb.load`` builds
it, so that a crafted or inconsistent file is refused with ``ModelFileError``
before anything is shown; what is shown is the built model's. Where
scikit-learn is missing an estimator's network is built all the same, and its
parameters and fitted scalars are read back with
``fastwb._estimator_params.decode``, the decoder ``fastwb.load`` uses, and
checked with its ``check_fitted_scalars``. Strings from the file (labels,
feature names, the writer's version) are shown as they are only when
printable and short, else quoted with escapes: a file cannot forge lines or
send escape codes to the terminal.

A saved scikit-learn Pipeline is shown one step a line (``read_header``'s
"steps"), then, where scikit-learn is installed, what its preprocessing does
(``fastwb.cli.preprocessing.describe``) and the fastwb estimator at its end as
above.
"""
from __future__ import annotations

import argparse
import textwrap

from fastwb import _pipeline_state, saving
from fastwb._estimator_params import check_fitted_scalars, decode
from fastwb._validation import shown
from fastwb.cli import preprocessing
from fastwb.cli.tables import check_readable, printable, shorten
from fastwb.network import Network

#: The estimator parameters shown, in this order (those the file has).
SHOWN_PARAMETERS = ("hidden_layer_sizes", "activation", "solver", "optimizer", "alpha",
                    "batch_size", "learning_rate", "learning_rate_init", "max_iter",
                    "early_stopping", "dropout", "class_weight", "dtype", "random_state")
#: The fitted scalars shown.
_SHOWN_SCALARS = ("n_iter_", "loss_", "best_validation_score_", "n_features_in_")


def run(args: argparse.Namespace) -> None:
    """Print what ``args.model`` holds: kind, versions, layers, parameters, training."""
    check_readable(args.model, "model file")
    header, arrays = saving.read_file(args.model)
    kind, config = header["kind"], header["config"]
    try:
        # built in full, so that a crafted file is refused as load refuses it, before
        # anything below shows it
        model = saving.build(args.model, kind, config, arrays)
    except ImportError:
        model = None
    title = (f"{args.model}: {'fastwb network' if kind == 'network' else kind}, file format "
             f"{header['format_version']}, written by fastwb "
             f"{printable(header['fastwb_version'], 40)}")
    outer = None                # a pipeline around the estimator described below
    if kind in _pipeline_state.KINDS:
        print(title)
        version = config.get("sklearn_version")
        print(f"steps (fitted with scikit-learn "
              f"{printable(version, 40) if isinstance(version, str) else '?'}):")
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
        arrays = {name[len(prefix):]: values for name, values in arrays.items()
                  if name.startswith(prefix)}
    attributes: dict = {}
    if kind == "network":
        network, optimizer = model, model.optimizer
    else:
        with saving.building(args.model, kind):
            params, network, attributes = _estimator(model, config, arrays)
        optimizer = None
    if outer is None:           # shown once the file is known to be good
        print(title)
    if kind != "network":
        shown_params = [f"{name}={shown(params[name])}" for name in SHOWN_PARAMETERS
                        if name in params and not (name == "optimizer" and params[name] is None)]
        print(textwrap.fill("parameters: " + ", ".join(shown_params), width=79,
                            subsequent_indent="  ", break_long_words=False))
        if network is None:
            print("not fitted")
            return
    _show_network(network, optimizer)
    if attributes:
        summary = [f"{attributes.get('n_iter_', '?')} epochs"]
        if isinstance(attributes.get("loss_"), float):
            summary.append(f"final loss {attributes['loss_']:.6g}")
        if isinstance(attributes.get("best_validation_score_"), float):
            summary.append(f"best validation score {attributes['best_validation_score_']:.4f}")
        print("trained: " + ", ".join(summary))
    if "classes_" in arrays:
        print(f"classes: {len(arrays['classes_'])}: "
              f"{shorten(map(printable, arrays['classes_'].tolist()), 10)}")
    n_features = attributes.get("n_features_in_", network.sizes[0])
    names = arrays["feature_names_in_"].tolist() if "feature_names_in_" in arrays else None
    if outer is not None:       # the columns of the data, before the preprocessing
        n_features = outer.n_features_in_
        names = getattr(outer, "feature_names_in_", None)
    if names is not None:
        print(f"features: {n_features}: {shorten(map(printable, names), 10)}")
    else:
        print(f"features: {n_features}")


def _estimator(model, config: dict, arrays: dict) -> tuple[dict, Network | None, dict]:
    """An estimator file's parameters, network (None if unfitted) and shown
    fitted scalars: the built ``model``'s, or where scikit-learn is missing (no
    model), read from the file and checked as far as that can be done without it."""
    params = decode(config["params"])
    if not isinstance(params, dict):
        raise ValueError("the estimator's params must be an object")
    if model is not None:
        if not hasattr(model, "_network"):
            return params, None, {}
        return params, model.network, {name: getattr(model, name)
                                       for name in _SHOWN_SCALARS if hasattr(model, name)}
    if config.get("fitted") is not True:
        return params, None, {}
    network = Network.from_state(config["network"],
                                 {name[len("network/"):]: values for name, values in arrays.items()
                                  if name.startswith("network/")})
    if not isinstance(config["attributes"], dict):
        raise ValueError("the estimator's attributes must be an object")
    attributes = {name: decode(value) for name, value in config["attributes"].items()}
    check_fitted_scalars(attributes, network.sizes)
    return params, network, {name: attributes[name] for name in _SHOWN_SCALARS
                             if name in attributes}


def _show_network(network: Network, optimizer) -> None:
    """The layer table (from the built network) and the optimizer's counts."""
    print(f"network: {' -> '.join(map(str, network.sizes))} ({network.dtype.name}, "
          f"loss {network.loss_name})")
    print(f"  {'layer':<7}{'inputs':>8}{'outputs':>9}  {'activation':<12}{'dropout':>8}"
          f"{'parameters':>12}")
    total = 0
    for i, layer in enumerate(network.layers):
        count = layer.n_in * layer.n_out + layer.n_out
        total += count
        print(f"  {i + 1:<7}{layer.n_in:>8}{layer.n_out:>9}  {layer.activation!s:<12}"
              f"{network.dropout[i]:>8g}{count:>12,}")
    print(f"  {'total':<7}{'':>8}{'':>9}  {'':<12}{'':>8}{total:>12,}")
    if optimizer is not None:
        print(f"optimizer: {type(optimizer).__name__}, {optimizer.step} steps, "
              f"{optimizer.epoch} epochs")


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
