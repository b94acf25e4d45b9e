"""fastwb's ``MLPClassifier`` exported to ONNX, in float32 and with 8-bit weights, on digits.

One run trains fastwb's ``MLPClassifier`` (scikit-learn's defaults: 100 ReLU
units, Adam, at most 200 epochs) on the digits split of ``digits.py``
(inputs / 16, stratified, 25% test), exports it with ``fastwb.onnx.to_onnx``
as float32 and quantized (``quantize="int8"`` and ``"uint8"``: weights in
8 bits, activations quantized per batch by onnxruntime), and reports side by
side:

* the test accuracy of each (what quantization costs), and the largest
  difference of a predicted probability from fastwb's;
* the size of each ONNX file;
* the time of one prediction of a batch (1, 32 and all test rows): fastwb's
  ``predict`` against onnxruntime's ``run`` of the label, interleaved rounds,
  each library with its default threads.

A second table is the agreement of onnxruntime with fastwb, network by
network: a 64-128-64-10 network of each hidden activation and each output
function, in float32 and float64, on 1,000 random rows (N(0, 2)); the largest
relative difference over the outputs of magnitude 1e-3 or more, and the
largest absolute difference over all.

The run checks itself: the float32 model must predict fastwb's labels, and
every network must agree within 1e-5 relative (float32) or 1e-12 (float64),
with an absolute floor of 1e-6 and 1e-14 for outputs near zero.

Usage::

    python benchmarks/onnx_export.py [--repeats 7] [--min-time 0.2] [--json results.json]
    python benchmarks/onnx_export.py --quick        # a few seconds: the CI smoke run
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np
import onnxruntime as ort
from digits import digits_split
from sklearn.exceptions import ConvergenceWarning

import fastwb
import fastwb.functions
from fastwb.bench.options import add_json
from fastwb.bench.timing import fmt_time, interleaved
from fastwb.onnx import to_onnx
from fastwb.sklearn import MLPClassifier

#: The networks of the agreement table: (hidden activation, loss).
NETWORKS = ([(name, "softmax_cross_entropy") for name in (
    "identity", "relu", "leaky_relu", "sigmoid", "tanh", "elu", "selu", "gelu", "softplus",
    "swish")] + [("tanh", loss) for loss in ("binary_cross_entropy", "poisson", "mse")])
#: Tolerances of the agreement check: (relative, absolute) by dtype.
TOLERANCES = {"float32": (1e-5, 1e-6), "float64": (1e-12, 1e-14)}

#: The exports compared: name -> ``to_onnx``'s quantize option.
EXPORTS = {"ONNX float32": None, "ONNX int8": "int8", "ONNX uint8": "uint8"}


def run(max_iter: int, batches: list[int], repeats: int, min_time: float) -> dict:
    Xtr, Xte, ytr, yte = digits_split(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(random_state=0, max_iter=max_iter).fit(Xtr, ytr)
    expected = clf.predict_proba(Xte)
    rows = {"fastwb": {"accuracy": float(np.mean(clf.predict(Xte) == yte)), "bytes": None,
                       "max_proba_diff": 0.0}}
    sessions = {}
    for name, quantize in EXPORTS.items():
        model = to_onnx(clf, quantize=quantize)
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        label, proba = session.run(None, {"X": Xte})
        if quantize is None and not np.array_equal(label, clf.predict(Xte)):
            raise AssertionError("the float32 ONNX model predicts other labels than fastwb")
        rows[name] = {"accuracy": float(np.mean(label == yte)),
                      "bytes": len(model.SerializeToString()),
                      "max_proba_diff": float(np.abs(proba - expected).max())}
        sessions[name] = session
    timings: dict[int, dict] = {}
    for batch in batches:
        X = Xte[:batch]
        contenders = {"fastwb": lambda X=X: clf.predict(X)}
        for name, session in sessions.items():
            contenders[name] = lambda X=X, session=session: session.run(["label"], {"X": X})
        timings[batch] = {name: result["median_s"] for name, result in
                          interleaved(contenders, repeats, min_time, settle=0.05).items()}
    return {"rows": rows, "timings": timings, "epochs": int(clf.n_iter_),
            "n_train": len(ytr), "n_test": len(yte), "fastwb": fastwb.__version__,
            "onnxruntime": ort.__version__}


def agreement() -> list[dict]:
    """onnxruntime's outputs against fastwb's for each network of NETWORKS, both dtypes."""
    X = np.random.default_rng(0).normal(scale=2.0, size=(1000, 64))
    rows = []
    for activation, loss in NETWORKS:
        row = {"activation": activation, "output": fastwb.functions.OUTPUT_ACTIVATION[loss]}
        for dtype, (rtol, atol) in TOLERANCES.items():
            net = fastwb.Network([64, 128, 64, 10], activation=activation, loss=loss,
                                 dtype=dtype, seed=0)
            session = ort.InferenceSession(to_onnx(net).SerializeToString(),
                                           providers=["CPUExecutionProvider"])
            got = session.run(None, {"X": X.astype(dtype)})[0]
            want = net.predict(X.astype(dtype))
            if not np.allclose(got, want, rtol=rtol, atol=atol):
                raise AssertionError(f"{activation} ({loss}, {dtype}): onnxruntime disagrees")
            large = np.abs(want) >= 1e-3
            difference = np.abs(got.astype(np.float64) - want)
            row[dtype] = (float((difference[large] / np.abs(want[large])).max()),
                          float(difference.max()))
        rows.append(row)
    return rows


def agreement_report(rows: list[dict]) -> str:
    lines = ["| hidden | output | float32 max rel | float32 max abs | float64 max rel | "
             "float64 max abs |", "|---|---|---:|---:|---:|---:|"]
    for row in rows:
        cells = [f"{value:.1e}" for dtype in TOLERANCES for value in row[dtype]]
        lines.append(f"| {row['activation']} | {row['output']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(result: dict) -> str:
    batches = list(result["timings"])
    lines = ["| model | test accuracy | largest probability difference | file | "
             + " | ".join(f"predict {b} row{'s' if b > 1 else ''}" for b in batches) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(batches)]
    for name, row in result["rows"].items():
        size = "-" if row["bytes"] is None else f"{row['bytes'] / 1024:.1f} KiB"
        times = [fmt_time(result["timings"][b][name]) for b in batches]
        lines.append(f"| {name} | {row['accuracy']:.2%} | {row['max_proba_diff']:.1e} | "
                     f"{size} | " + " | ".join(times) + " |")
    base = result["rows"]["ONNX float32"]["accuracy"]
    lines.append("")
    for name in ("ONNX int8", "ONNX uint8"):
        cost = 100 * (base - result["rows"][name]["accuracy"])
        lines.append(f"- {name}: quantization costs {cost:+.2f} accuracy points, the file is "
                     f"{result['rows']['ONNX float32']['bytes'] / result['rows'][name]['bytes']:.1f}x "
                     f"smaller")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iter", type=int, default=200, help="epochs at most (default 200)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--min-time", type=float, default=0.2,
                        help="seconds a round lasts at least (default 0.2)")
    parser.add_argument("--quick", action="store_true",
                        help="20 epochs, one short round: a smoke run, no timing judged")
    add_json(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.max_iter, args.repeats, args.min_time = 20, 1, 0.001
    result = run(args.max_iter, [1, 32, 450], args.repeats, args.min_time)
    result["agreement"] = agreement()
    print(f"digits: {result['n_train']} training and {result['n_test']} test samples, "
          f"{result['epochs']} epochs; fastwb {result['fastwb']}, onnxruntime "
          f"{result['onnxruntime']}\n")
    print(report(result))
    print("\nonnxruntime against fastwb (64-128-64-10, 1,000 rows):\n")
    print(agreement_report(result["agreement"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
