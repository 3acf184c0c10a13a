"""Learning-rate schedules, which set an optimizer's ``lr`` once per epoch (in fastconv.optim)."""

from __future__ import annotations

from typing import Any

from ._validate import check_int, check_real


class _Schedule:
    """Sets ``optimizer.lr = base_lr * factor(epoch)`` each time ``step()`` ends an epoch."""

    def __init__(self, optimizer: Any) -> None:
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"optimizer must have a settable lr (an Optimizer or "
                            f"RuleOptimizer), got {type(optimizer).__name__}")
        # A RuleOptimizer's lr is None until its config or first step sets learning_rate:
        # refused now, not as None * factor at the end of the first epoch.
        self.base_lr = check_real("optimizer.lr (the base learning rate)", optimizer.lr, 0.0)
        self.optimizer = optimizer
        self.epoch = 0

    def factor(self, epoch: int) -> float:
        """The learning rate's factor after ``epoch`` epochs; each schedule defines it."""
        raise NotImplementedError

    def step(self) -> float:
        """End an epoch: advance the count and set the optimizer's learning rate.

        Returns
        -------
        float
            The new learning rate, ``base_lr * factor(epoch)``.
        """
        self.epoch += 1
        self.optimizer.lr = self.base_lr * self.factor(self.epoch)
        return self.optimizer.lr


class ExponentialLR(_Schedule):
    """Per-epoch decay ``lr = base_lr * gamma**epoch`` (the CS231n Solver's ``lr_decay``).

    Parameters
    ----------
    optimizer : Optimizer or RuleOptimizer
        Anything with a settable ``lr``; its ``lr`` now is ``base_lr``.
    gamma : float
        The factor per epoch, >= 0.

    Raises
    ------
    TypeError
        For an optimizer without an ``lr``, or whose ``lr`` is no real number (a
        RuleOptimizer before its learning rate is set).
    ValueError
        For a negative ``gamma`` or ``lr``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.optim import SGD, ExponentialLR
    >>> schedule = ExponentialLR(SGD({"w": np.zeros(1)}, lr=0.1), gamma=0.5)
    >>> [schedule.step() for _ in range(3)]
    [0.05, 0.025, 0.0125]
    """

    def __init__(self, optimizer: Any, gamma: float) -> None:
        check_real("gamma", gamma, 0.0)
        super().__init__(optimizer)
        self.gamma = gamma

    def factor(self, epoch: int) -> float:
        """The learning rate's factor after ``epoch`` epochs: ``gamma ** epoch``.

        Parameters
        ----------
        epoch : int
            Epochs ended.

        Returns
        -------
        float
        """
        return self.gamma ** epoch


class StepLR(_Schedule):
    """Step schedule ``lr = base_lr * gamma**(epoch // step_size)``, as torch's StepLR.

    Parameters
    ----------
    optimizer : Optimizer or RuleOptimizer
        Anything with a settable ``lr``; its ``lr`` now is ``base_lr``.
    step_size : int
        Epochs between two decays, >= 1.
    gamma : float, default 0.1
        The factor per decay, >= 0.

    Raises
    ------
    TypeError, ValueError
        For a ``step_size`` that is no int >= 1, a negative ``gamma``, or an
        optimizer's ``lr`` that is no real number >= 0 (as for :class:`ExponentialLR`).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.optim import SGD, StepLR
    >>> schedule = StepLR(SGD({"w": np.zeros(1)}, lr=0.1), step_size=2, gamma=0.5)
    >>> [schedule.step() for _ in range(4)]
    [0.1, 0.05, 0.05, 0.025]
    """

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1) -> None:
        step_size = check_int("step_size", step_size, 1)
        check_real("gamma", gamma, 0.0)
        super().__init__(optimizer)
        self.step_size = step_size
        self.gamma = gamma

    def factor(self, epoch: int) -> float:
        """The learning rate's factor after ``epoch`` epochs: ``gamma ** (epoch // step_size)``.

        Parameters
        ----------
        epoch : int
            Epochs ended.

        Returns
        -------
        float
        """
        return self.gamma ** (epoch // self.step_size)
