"""fastwb's benchmark machinery, installed with the package so that
``fastwb bench`` runs on any machine that has fastwb.

``timing`` times contenders side by side in interleaved rounds;
``contenders`` builds the same network and training step in fastwb, its NumPy
reference and the peer libraries; ``peers`` runs them on the standard shapes
and writes the tables (``fastwb bench --peers``, ``benchmarks/peers.py``).
"""
