"""The Solver's evaluation: class scores in evaluation mode, accuracy over a seeded subset."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy

from .._typing import Array
from ..backend import as_numpy, get_array_module, to_device

if TYPE_CHECKING:
    from .adapters import ModelAdapter
    from .parallel import Strategy


class AccuracyChecks:
    """The Solver's evaluation hooks, over its ``model_adapter``, ``parallel``, ``seed``, ``epoch``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastconv.nn as nn
    >>> from fastconv.train import Solver
    >>> X = np.eye(3, dtype=np.float32)
    >>> data = {"X_train": X, "y_train": np.arange(3), "X_val": X, "y_val": np.arange(3)}
    >>> solver = Solver(nn.linear_classifier(3, 3, seed=0), data, num_epochs=0)
    >>> solver.predict_scores(X).shape, len(solver.accuracy_indices(3, 2))
    ((3, 3), 2)
    >>> 0.0 <= solver.check_accuracy(X, np.arange(3)) <= 1.0
    True
    """

    model_adapter: ModelAdapter
    parallel: Strategy
    seed: int
    epoch: int

    def _batch(self, X, idx):
        """Rows ``idx`` of X on the model's device."""
        xp = get_array_module(X)
        return to_device(X[xp.asarray(idx)], self.model_adapter.device)

    def predict_scores(self, X: Array) -> Array:
        """Class scores for ``X``, in evaluation mode.

        Parameters
        ----------
        X : Array
            Inputs on the model's device.

        Returns
        -------
        Array
            (N, classes) scores.
        """
        return self.model_adapter.scores(X)

    def accuracy_indices(self, n: int, num_samples: int | None = None) -> Array:
        """The samples check_accuracy scores: all ``n``, or ``num_samples`` of them.

        Parameters
        ----------
        n : int
            The size of the set.
        num_samples : int, optional
            How many to draw, without replacement, seeded by (seed, epoch).

        Returns
        -------
        numpy.ndarray
            Sample indices, identical on every process.
        """
        if num_samples is None or n <= num_samples:
            return numpy.arange(n)
        return numpy.random.default_rng([self.seed, self.epoch, 1]).choice(n, num_samples,
                                                                           replace=False)

    def check_accuracy(self, X: Array, y: Array, num_samples: int | None = None,
                       batch_size: int = 100) -> float:
        """Fraction of (a seeded subset of ``num_samples`` of) X classified as y.

        Parameters
        ----------
        X, y : Array
            Inputs and integer labels, on any device.
        num_samples : int, optional
            Score a seeded subset of that many samples (None: all).
        batch_size : int, default 100
            Samples scored at once.

        Returns
        -------
        float
            The accuracy, from 0 to 1, over all processes' parts.
        """
        y = as_numpy(y)

        def count_correct(idx):
            correct = 0
            for start in range(0, len(idx), batch_size):
                part = idx[start:start + batch_size]
                scores = self.predict_scores(self._batch(X, part))
                correct += int((as_numpy(scores).argmax(axis=1) == y[part]).sum())
            return correct

        return self.parallel.accuracy(self.accuracy_indices(len(X), num_samples), count_correct)
