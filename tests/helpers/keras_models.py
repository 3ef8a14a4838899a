"""Small Keras models built by the tests for one property each (needs the [train] extra)."""

from __future__ import annotations

import numpy as np


def fragile_model(path):
    """A valid classifier whose decision rests on logit differences far below int8 resolution.

    Logits = 0.5 * mean green (shared by every class, so it spreads the calibrated range over
    ~80 units) + 0.0005 * (mean red - mean blue): float32 separates red from blue images, but the
    discriminative part (< 0.1) is below one uint8 step (~0.3) of the logits' quantized range.
    """
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)  # (N, 3) mean R, G, B in 0..255
    dense = keras.layers.Dense(3, activation="softmax")
    outputs = dense(x)
    model = keras.Model(inputs, outputs)
    w = np.zeros((3, 3), np.float32)
    w[1, :] = 0.5
    w[2, 0], w[0, 0], w[0, 2], w[2, 2] = 0.0005, -0.0005, 0.0005, -0.0005  # "blue" likes blue, "red" likes red
    dense.set_weights([w, np.zeros(3, np.float32)])
    model.save(path)
    return path
