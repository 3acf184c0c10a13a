"""fastconv: fast im2col convolution and pooling for from-scratch NumPy networks,
on the GPU (CuPy + CUDA kernels) and the CPU (NumPy), with one API.

Examples
--------
>>> import numpy as np
>>> import fastconv as fc
>>> x, w = np.ones((2, 3, 8, 8), np.float32), np.ones((4, 3, 3, 3), np.float32)
>>> out, cache = fc.conv2d_forward(x, w, padding=1)
>>> dx, dw, db = fc.conv2d_backward(np.ones_like(out), cache)
>>> out.shape, dx.shape, dw.shape, db
((2, 4, 8, 8), (2, 3, 8, 8), (4, 3, 3, 3), None)
"""

__version__ = "0.1.0"

from ._gpu.gemm import get_tf32, set_tf32
from .backend import (
    as_numpy,
    default_device,
    get_array_module,
    gpu_available,
    gpu_status,
    to_device,
)
from .functional import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    adaptive_max_pool2d_backward,
    adaptive_max_pool2d_forward,
    avg_pool1d_backward,
    avg_pool1d_forward,
    avg_pool2d_backward,
    avg_pool2d_forward,
    avg_pool3d_backward,
    avg_pool3d_forward,
    conv1d_backward,
    conv1d_forward,
    conv2d_backward,
    conv2d_forward,
    conv3d_backward,
    conv3d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
    group_norm_backward,
    group_norm_forward,
    interpolate_backward,
    interpolate_forward,
    layer_norm_backward,
    layer_norm_forward,
    max_pool1d_backward,
    max_pool1d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    max_pool3d_backward,
    max_pool3d_forward,
    max_unpool2d_backward,
    max_unpool2d_forward,
    mse_loss,
)
from .im2col import col2im, im2col
from .shapes import conv_output_size
from .workspace import get_workspace_limit, set_workspace_limit, workspace_limit
