"""Upsampling layer: ``Upsample`` resizes (N, C, H, W) maps, as ``torch.nn.Upsample``."""

from ..functional.interpolate import interpolate_backward, interpolate_forward
from .stateless import FunctionalLayer


class Upsample(FunctionalLayer):
    """Resize to ``size`` or by ``scale_factor`` ('nearest' or 'bilinear'; see ``interpolate_forward``)."""

    forward_fn = interpolate_forward
    backward_fn = interpolate_backward

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None):
        super().__init__(size=size, scale_factor=scale_factor, mode=mode,
                         align_corners=align_corners)
