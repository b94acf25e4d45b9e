"""fastwb's benchmark library, installed with the package so that
``fastwb bench`` runs on any machine that has fastwb; the scripts in
``benchmarks/`` and its pytest-benchmark suite are thin layers over it.

- ``shapes``: the standard shapes (layer widths, batch) and dtypes;
- ``flops``: the FLOP count of a forward pass, a training step, a square GEMM;
- ``cases``: the networks, data and optimizers of a case;
- ``checks``: correctness checks against the NumPy reference;
- ``timing``: contenders timed side by side in interleaved rounds, the GEMM rate;
- ``machine``: the CPU, load, libraries and thread pools of a run; BLAS thread limits;
- ``hogs``: CPU-bound processes to measure beside (a busy machine);
- ``options``: the command-line options the scripts share;
- ``contenders``: the same network and step in fastwb (also on its route before
  issue 15), its reference and its peers;
- ``peers``: the peers run on the standard shapes (``fastwb bench --peers``);
- ``allreduce``: the ring-allreduce cost model of data-parallel training
  (``benchmarks/distributed.py``).
"""
