"""The classic single neuron, in fastwb.

One neuron with weights [0.6, 0.3, -0.4] and bias 0.2 looks at three signals
that are all on: its score is 0.6 + 0.3 - 0.4 + 0.2 = 0.7, above the 0.5
threshold, so it says "Sunny Day".
"""
import numpy as np

import fastwb

neuron = fastwb.Network([3, 1], loss="mse", dtype="float64")   # identity output
neuron.layers[0].weights = [[0.6], [0.3], [-0.4]]
neuron.layers[0].bias = [0.2]

signals = np.array([1.0, 1.0, 1.0])
score = neuron.predict(signals)[0]
verdict = "Sunny Day" if score > 0.5 else "Not a Sunny Day"
print(f"weights {neuron.layers[0].weights.ravel()}, bias {neuron.layers[0].bias}")
print(f"score {score:.1f} -> {verdict}")
