"""The seed CNN from the notebook, with scaling to [0, 1] as its first layer. Imports Keras."""

from __future__ import annotations

import keras

from .config import INPUT_SHAPE


def build_model(num_classes: int = 10, input_shape: tuple[int, int, int] = INPUT_SHAPE) -> keras.Model:
    """Build the notebook's CNN: 2,168,362 parameters for 10 classes.

    conv32-conv32-maxpool-dropout.25, conv64-conv64-maxpool-dropout.25, flatten, dense512-dropout.5,
    dense(num_classes) softmax; 3x3 'same' convolutions with ReLU. The model takes raw pixels,
    (N, 32, 32, 3) in 0..255; ``Rescaling(1/255)`` makes it self-contained for export.
    The current Keras dtype policy applies (``mixed_bfloat16`` computes in bf16, except the
    softmax head, which stays float32 so probabilities are accurate).

    Example:
        >>> model = build_model(10)
        >>> model.count_params()
        2168362
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=input_shape, name="images"),
            layers.Rescaling(1.0 / 255.0, name="rescale"),
            layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1a"),
            layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1b"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Dropout(0.25, name="drop1"),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2a"),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2b"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.Dropout(0.25, name="drop2"),
            layers.Flatten(name="flatten"),
            layers.Dense(512, activation="relu", name="fc"),
            layers.Dropout(0.5, name="drop3"),
            layers.Dense(num_classes, name="logits"),
            layers.Activation("softmax", dtype="float32", name="probabilities"),
        ],
        name="cifar_pack_cnn",
    )
