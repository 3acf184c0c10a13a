"""The optimisers of "Deep Learning from Scratch" (``common/optimizer.py``) on fastconv.optim.

Same classes, arguments, defaults and ``update(params, grads)``, which
updates the arrays of the ``params`` dict in place; state is created on the
first update, on the parameters' device, and every setting (``lr``,
``momentum``, ``decay_rate``, ``beta1``, ``beta2``) may change between
updates, as the book's code reads them on each one. Each runs the
fastconv.optim (PyTorch-formula) optimiser with the book's eps (1e-7). The
numbers are the book's, to rounding (1e-15 relative in the tests), for SGD,
AdaGrad, RMSprop and Adam, and for Momentum and Nesterov while the learning
rate is constant: the book's velocity holds
``-lr * g`` with each step's own lr, fastconv's buffer holds g, which is
multiplied by the current lr.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping
from typing import Any

from .. import optim
from .._typing import Array

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]

BOOK_EPS = 1e-7


class _BookOptimizer:
    """``update(params, grads)`` over dicts, in place, backed by a fastconv.optim optimiser.

    The optimiser is built from the current settings on every update and
    takes over the last one's state, so a setting changed between updates
    is used (and checked) as the book's code uses it.
    """

    def __init__(self, lr: float) -> None:
        self.lr = lr
        self._optimizer: Any = None

    def _build(self, params: MutableMapping[str, Array]) -> Any:
        raise NotImplementedError

    def _configure(self, optimizer: Any) -> None:
        """Set what depends on the update's count on ``optimizer``, once it is checked."""

    def update(self, params: MutableMapping[str, Array], grads: Mapping[str, Array]) -> None:
        """Update every array in ``params`` in place from ``grads``.

        Parameters
        ----------
        params : dict of str to array
            The parameters, updated in place.
        grads : dict of str to array
            Their gradients, with the same keys: float arrays of their
            parameters' shapes.

        Raises
        ------
        TypeError, ValueError
            For a setting out of range, ``params`` or ``grads`` that is no
            dict, or naming the parameter without such a gradient; raised
            before anything (parameters, state, Adam's ``iter``) changes.
        """
        optimizer = self._build(params)  # checks the settings
        if self._optimizer is not None:
            optimizer.state = self._optimizer.state
        optimizer._check_step(grads)
        self._optimizer = optimizer
        self._configure(optimizer)
        optimizer.step(grads)


class SGD(_BookOptimizer):
    """``params[k] -= lr * grads[k]``.

    Parameters
    ----------
    lr : float, default 0.01
        The learning rate (an attribute: it may change between updates).

    Examples
    --------
    >>> import numpy as np
    >>> params = {"W": np.ones(2)}
    >>> SGD(lr=0.1).update(params, {"W": np.array([1.0, -1.0])})
    >>> params["W"]
    array([0.9, 1.1])
    """

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)

    def _build(self, params: MutableMapping[str, Array]) -> Any:
        return optim.SGD(params, lr=self.lr)


class Momentum(_BookOptimizer):
    """Momentum SGD: ``v = momentum * v - lr * g; w += v``.

    Parameters
    ----------
    lr : float, default 0.01
        The learning rate.
    momentum : float, default 0.9
        The velocity's decay.

    Examples
    --------
    >>> import numpy as np
    >>> params, optimizer = {"W": np.zeros(1)}, Momentum(lr=0.1)
    >>> for _ in range(2):
    ...     optimizer.update(params, {"W": np.ones(1)})
    >>> params["W"].round(6)
    array([-0.29])
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = momentum

    def _build(self, params: MutableMapping[str, Array]) -> Any:
        return optim.SGD(params, lr=self.lr, momentum=self.momentum)


class Nesterov(_BookOptimizer):
    """Nesterov's accelerated gradient: ``w += mu**2 * v - (1 + mu) * lr * g; v = mu * v - lr * g``.

    The form of arXiv:1212.0901 that the book's code has used since 2021 and
    that ``torch.optim.SGD(nesterov=True)`` computes.

    Parameters
    ----------
    lr : float, default 0.01
        The learning rate.
    momentum : float, default 0.9
        mu, the velocity's decay.

    Examples
    --------
    >>> import numpy as np
    >>> params = {"W": np.zeros(1)}
    >>> Nesterov(lr=0.1).update(params, {"W": np.ones(1)})
    >>> params["W"].round(6)
    array([-0.19])
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = momentum

    def _build(self, params: MutableMapping[str, Array]) -> Any:
        return optim.SGD(params, lr=self.lr, momentum=self.momentum, nesterov=True)


class AdaGrad(_BookOptimizer):
    """AdaGrad: ``h += g**2; w -= lr * g / (sqrt(h) + 1e-7)``.

    Parameters
    ----------
    lr : float, default 0.01
        The learning rate.

    Examples
    --------
    >>> import numpy as np
    >>> params = {"W": np.zeros(1)}
    >>> AdaGrad(lr=0.1).update(params, {"W": np.array([2.0])})
    >>> params["W"].round(6)
    array([-0.1])
    """

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)

    def _build(self, params: MutableMapping[str, Array]) -> Any:
        return optim.AdaGrad(params, lr=self.lr, eps=BOOK_EPS)


class RMSprop(_BookOptimizer):
    """RMSprop: ``h = decay_rate * h + (1 - decay_rate) * g**2; w -= lr * g / (sqrt(h) + 1e-7)``.

    Parameters
    ----------
    lr : float, default 0.01
        The learning rate.
    decay_rate : float, default 0.99
        The decay of the squared gradients' average.

    Examples
    --------
    >>> import numpy as np
    >>> params = {"W": np.zeros(1)}
    >>> RMSprop(lr=0.01).update(params, {"W": np.array([1.0])})
    >>> params["W"].round(6)
    array([-0.1])
    """

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99) -> None:
        super().__init__(lr)
        self.decay_rate = decay_rate

    def _build(self, params: MutableMapping[str, Array]) -> Any:
        return optim.RMSProp(params, lr=self.lr, alpha=self.decay_rate, eps=BOOK_EPS)


class Adam(_BookOptimizer):
    """The book's Adam: ``w -= lr_t * m / (sqrt(v) + 1e-7)`` with the bias correction in lr_t.

    ``lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)`` at update t = 1, 2, ...,
    counted in ``iter`` as the book's attribute does.

    Parameters
    ----------
    lr : float, default 0.001
        The learning rate.
    beta1, beta2 : float, default 0.9, 0.999
        The decays of the gradients' and the squared gradients' averages.

    Examples
    --------
    >>> import numpy as np
    >>> params, optimizer = {"W": np.zeros(1)}, Adam(lr=0.1)
    >>> optimizer.update(params, {"W": np.array([3.0])})
    >>> params["W"].round(6), optimizer.iter
    (array([-0.1]), 1)
    """

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999) -> None:
        super().__init__(lr)
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0

    def _build(self, params: MutableMapping[str, Array]) -> Any:
        return optim.Adam(params, lr=self.lr, betas=(self.beta1, self.beta2), eps=BOOK_EPS)

    def _configure(self, optimizer: Any) -> None:
        self.iter += 1
        # The book adds eps to sqrt(v) before the bias correction, fastconv's Adam to
        # sqrt(v_hat) = sqrt(v) / sqrt(1 - beta2**t) after it: eps / sqrt(1 - beta2**t)
        # there is the book's eps here. (With eps constant instead, a step on gradients
        # around 1e-6 is 5x the book's at t = 1 and still 2x at t = 20.)
        optimizer.eps = BOOK_EPS / math.sqrt(1.0 - self.beta2 ** self.iter)
