"""Two things the ``fast`` recipe does to the weights besides SGD steps, as Keras callbacks.

``BatchNormRefresh``: BatchNorm's moving statistics are an average over the last few batches
(momentum 0.6: ~2 batches), taken while the weights move fast at a high learning rate, so at the
end of an epoch they describe weights a few steps old. Measured on the validation split after
1.25 epochs (docs/recipes.md): 49 % with the moving statistics, 59 % with each batch's own, and
58 % after refreshing the moving statistics on 8 training batches with the final weights. Before
every validation (and so before every checkpoint) the statistics are re-estimated that way.

``FreezeLayer``: airbench trains its whitening layer's bias for the first epochs only.

``Lookahead``: airbench's averaging. From ``start_epoch`` on, every ``every`` steps the weights
(and BatchNorm statistics) move to an exponential average of themselves whose decay grows over
training (``decay ** every * progress ** 3``), and the average is copied back into the model, so
the model always holds the average: at an epoch's end the weights *are* the average, which makes a
resumed run (which starts the average again from the saved weights) the same as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np

from .tf_setup import keras, tf

REFRESH_BATCHES = 8  # training batches BatchNormRefresh runs before each validation


class BatchNormRefresh(keras.callbacks.Callback):
    """Before each validation, run ``images`` (uint8 (N, 32, 32, 3), fixed) through the model in
    training mode in batches of ``batch_size``: only BatchNorm's moving statistics change."""

    def __init__(self, images: np.ndarray, batch_size: int):
        super().__init__()
        self.batches = [tf.constant(images[i : i + batch_size], tf.float32) for i in range(0, len(images), batch_size)]

    @classmethod
    def from_training_set(
        cls, x_train: np.ndarray, batch_size: int, seed: int, batches: int = REFRESH_BATCHES
    ) -> BatchNormRefresh:
        """``batches`` batches of a fixed random sample of ``x_train``, in random order: the split's
        arrays are ordered by class, and each refresh batch must hold every class (statistics of a
        few classes are wrong for all: the first 4,096 images were 4,000 airplanes)."""
        sample = np.random.default_rng(seed).permutation(len(x_train))[: batches * batch_size]
        return cls(x_train[sample], batch_size)

    def set_model(self, model: keras.Model) -> None:
        # Keras sets the model again at every fit(), so once an epoch here: the traced function is
        # kept while the model stays the same (eagerly, the 8 calls took 1.2 s of a ~22 s epoch;
        # traced again each epoch, 0.7 s).
        if getattr(self, "model", None) is not model:
            self.step = tf.function(lambda batch: model(batch, training=True))
        super().set_model(model)

    def refresh(self) -> None:
        for batch in self.batches:
            self.step(batch)

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.refresh()


class Lookahead(keras.callbacks.Callback):
    def __init__(
        self, total_steps: int, steps_per_epoch: int, start_epoch: int = 3, every: int = 5, decay: float = 0.95
    ):
        super().__init__()
        self.total, self.start = total_steps, start_epoch * steps_per_epoch
        self.every, self.decay = every, decay
        self.average: list[np.ndarray] | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.average = None  # starts again from the weights, which are the average (module docstring)

    def on_test_begin(self, logs: dict | None = None) -> None:
        # The epoch's last steps since the last averaging: the model validated and saved is the average.
        if self.average is not None:
            for average, weight in zip(self.average, self.model.weights):
                weight.assign(average)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        if step < self.start or step % self.every:
            return
        if self.average is None:
            self.average = [w.numpy() for w in self.model.weights]
            return
        rho = self.decay**self.every * (step / self.total) ** 3
        for average, weight in zip(self.average, self.model.weights):
            average *= rho
            average += (1.0 - rho) * weight.numpy()
            weight.assign(average)


class FreezeLayer(keras.callbacks.Callback):
    """Stop training the layer ``name`` after ``after_epochs`` epochs: from then on the optimizer
    neither steps nor decays it (as a PyTorch parameter with ``requires_grad`` off). The layer's
    ``trainable`` flag is saved with the checkpoint, so a resumed run keeps it frozen."""

    def __init__(self, name: str, after_epochs: int):
        super().__init__()
        self.name, self.after_epochs = name, after_epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        layer = self.model.get_layer(self.name)
        if epoch + 1 >= self.after_epochs and layer.trainable:
            layer.trainable = False
            self.model.train_function = None  # traced with the old trainable list: the next fit() traces again
