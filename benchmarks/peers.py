"""fastwb against PyTorch, JAX, scikit-learn and its NumPy reference (see
``fastwb/bench/peers.py``; ``fastwb bench --peers`` is the same run).

Usage::

    python benchmarks/peers.py [--shape 784-256-128-10] [--dtype float32] [--threads 2]
                               [--only pytorch] [--json out.json] [--markdown out.md]
                               [--plot peers.png] [--quick]
"""
from fastwb.bench.peers import main

if __name__ == "__main__":
    main()
