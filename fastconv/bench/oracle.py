"""What every benchmarked result is checked against before it is timed.

PyTorch on the CPU in float64, on the whole batch, when torch is installed. Without
it, the reference loops in float64 on :func:`.reduced.check_case` (one image, at most
four channels and filters of the same layer, cut from the same inputs): the loops on
the full S3 layer would take minutes, and a wrong index shows on a few channels as
well as on many.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import impls, ops, reduced
from .cases import Case


class Oracle:
    """Expected results for one case (see the module docstring for which).

    Parameters
    ----------
    case : Case
        The full case.
    inputs : mapping of str to numpy.ndarray
        Its inputs (:func:`.ops.make_inputs`).
    use_torch : bool
        Use PyTorch float64 (it must be importable); else the loops.

    Attributes
    ----------
    full : bool
        True when the check runs on the whole case (PyTorch).
    impl : fastconv.bench.impls.Impl
        The oracle implementation.
    check_case : Case
        The problem the check runs on: ``case``, or its reduced form.
    check_inputs : dict of str to numpy.ndarray
        Its inputs.
    expected : dict of str to numpy.ndarray
        The oracle's results on it.

    Examples
    --------
    >>> from fastconv.bench.cases import STANDARD_CONV
    >>> case = Case("conv2d", STANDARD_CONV[2])
    >>> oracle = Oracle(case, ops.make_inputs(case, "float32"), use_torch=False)
    >>> oracle.label
    'loop-float64 on S3 1x4x32x32 F4 k3 s1 p1'
    """

    def __init__(self, case: Case, inputs: Mapping[str, np.ndarray], use_torch: bool):
        impl = impls.torch_oracle() if use_torch else None
        self.full = impl is not None
        self.impl = impl or impls.loop_oracle()
        self.check_case = case if self.full else reduced.check_case(case)
        self.check_inputs = dict(inputs) if self.full else reduced.slice_inputs(inputs,
                                                                                self.check_case)
        self.expected = ops.run_once(self.impl.bind(self.check_case, self.check_inputs))
        self._known = {self.check_case: self.expected}

    @property
    def label(self) -> str:
        """The oracle's name and, when reduced, the problem it checks on."""
        if self.full:
            return self.impl.name
        return f"{self.impl.name} on {self.check_case.shape.label()}"

    def expected_for(self, small: Case, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The oracle's results on a smaller problem of the case (the loop column's).

        Parameters
        ----------
        small : Case
            A :func:`.reduced.reduce` of the case.
        inputs : mapping of str to numpy.ndarray
            Its inputs (:func:`.reduced.slice_inputs`).

        Returns
        -------
        dict of str to numpy.ndarray
            Computed once per problem.
        """
        if small not in self._known:
            self._known[small] = ops.run_once(self.impl.bind(small, inputs))
        return self._known[small]
