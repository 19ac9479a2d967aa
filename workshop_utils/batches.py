"""Feed arrays to ``fit`` in batches of one fixed shape, converted to float32 one batch at a time.

``model.fit(x, y)`` on NumPy arrays first copies a float16 ``x`` whole to float32 (twice the
memory), and its last batch of an epoch is smaller than the others (one more compilation under JAX).
:class:`ArrayBatches` avoids both. Importing this module imports Keras.
"""
from __future__ import annotations

import keras
import numpy as np


class ArrayBatches(keras.utils.PyDataset):
    """``(x, y)`` in batches of exactly ``batch_size`` samples, reshuffled every epoch when ``shuffle``.

    The last batch is completed with samples from the start of the epoch's order, so every sample is
    used at least once per epoch and every batch has the same shape. Pass ``class_weight`` to ``fit``.
    Without ``seed`` the order follows NumPy's global seed (set by ``keras.utils.set_random_seed``).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int = 32, shuffle: bool = True,
                 seed: int | None = None, dtype: str = "float32") -> None:
        super().__init__()
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} samples but y has {len(y)}; give one label per sample.")
        if len(x) == 0:
            raise ValueError("No samples to feed: x is empty.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.x, self.y, self.batch_size, self.dtype = x, np.asarray(y), batch_size, dtype
        self.shuffle = shuffle
        # without a seed, follow NumPy's global seed (set by keras.utils.set_random_seed)
        self._rng = np.random.default_rng(np.random.randint(2**31) if seed is None else seed)
        self._order = np.arange(len(x))
        self.on_epoch_end()

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)  # ceil

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range: there are {len(self)} batches.")
        positions = np.arange(index * self.batch_size, (index + 1) * self.batch_size) % len(self.x)
        chosen = np.sort(self._order[positions])  # sorted: faster reads from a memory-mapped x
        return self.x[chosen].astype(self.dtype), self.y[chosen]

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._order = self._rng.permutation(len(self.x))
