"""``fastwb export``: write a saved model as ONNX (``fastwb.onnx.to_onnx``).

The model is loaded with ``fastwb.load``, so export takes whatever a model
file holds: a network, an estimator, or a pipeline ending in one.
"""
from __future__ import annotations

import argparse
import os

from fastwb.cli.errors import CommandError
from fastwb.cli.predict import _load_model
from fastwb.cli.tables import check_writable
from fastwb.onnx import to_onnx


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``fastwb export``."""
    parser.add_argument("model", metavar="MODEL", help="a model file from fastwb train or "
                                                       "fastwb.save")
    parser.add_argument("--onnx", required=True, metavar="FILE",
                        help="write the model as ONNX to FILE")
    parser.add_argument("--opset", type=int, metavar="N",
                        help="the ONNX opset (default 21; 7 or later, gelu needs 9, "
                             "--quantize 11)")
    parser.add_argument("--quantize", choices=("int8", "uint8"),
                        help="8-bit weights through onnxruntime's dynamic quantization "
                             "(int8: signed weights, onnxruntime's default; uint8 where int8 "
                             "loses accuracy on CPUs without VNNI)")


def run(args: argparse.Namespace) -> None:
    """Write ``args.model`` as ONNX to ``args.onnx``."""
    check_writable(args.onnx, "ONNX file")
    model = _load_model(args.model)
    try:
        proto = to_onnx(model, args.onnx, opset=args.opset, quantize=args.quantize)
    except ImportError as error:
        raise CommandError(str(error)) from None
    except (TypeError, ValueError, NotImplementedError, RuntimeError) as error:
        # skl2onnx raises NotImplementedError and RuntimeError for what it cannot convert
        raise CommandError(f"cannot export {args.model}: {error}") from None
    weights = f", {args.quantize} weights" if args.quantize else ""
    # skl2onnx stamps a pipeline with the oldest opset its operators need
    opset = max(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))
    print(f"wrote {args.onnx} (ONNX opset {opset}{weights}, {os.path.getsize(args.onnx):,} "
          f"bytes)")
