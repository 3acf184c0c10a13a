"""Upsampling layer: ``Upsample`` resizes (N, C, H, W) maps, as ``torch.nn.Upsample``."""

from __future__ import annotations

from typing import Any

from ..functional.interpolate import check_resize, interpolate_backward, interpolate_forward
from .stateless import FunctionalLayer


class Upsample(FunctionalLayer):
    """Resize to ``size`` or by ``scale_factor``, as ``fastconv.functional.interpolate_forward``.

    Parameters
    ----------
    size : int or pair of int, optional
        The output's (OH, OW); give it or ``scale_factor``.
    scale_factor : float or pair of float, optional
        The output's size as a multiple of the input's.
    mode : {'nearest', 'bilinear'}, default 'nearest'
        The interpolation.
    align_corners : bool, optional
        For 'bilinear' only, as PyTorch's.

    Raises
    ------
    TypeError, ValueError
        When built with settings that ``interpolate_forward`` refuses for any input: both or
        neither of ``size`` and ``scale_factor``, one out of range or too large, an unknown
        mode, ``align_corners`` with 'nearest'.

    Examples
    --------
    >>> import numpy as np
    >>> Upsample(scale_factor=2).forward(np.array([[[[1.0, 2.0]]]]))
    array([[[[1., 1., 2., 2.],
             [1., 1., 2., 2.]]]])
    """

    forward_fn = interpolate_forward
    backward_fn = interpolate_backward

    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None) -> None:
        check_resize(size, scale_factor, mode, align_corners)  # refused now, not at forward
        super().__init__(size=size, scale_factor=scale_factor, mode=mode,
                         align_corners=align_corners)
