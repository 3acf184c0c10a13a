"""Which cases the self-test runs: small, but every geometry the kernels treat differently.

:data:`LOOP_CASES` have twins in :mod:`fastconv.reference` (convolution with
stride, asymmetric padding, dilation and groups; max and average pooling with
padding, dilation, ``ceil_mode`` and ``count_include_pad``; ``im2col`` and
``col2im``): the CPU path is checked against the loops on them.
:data:`GPU_CASES` add every other op with a GPU path (transposed, 1-D, 3-D,
depthwise and padded-mode convolution, 1-D, 3-D and adaptive pools, unpooling, interpolation,
activations, the normalisations, linear and the losses): the GPU path is
checked against the CPU path on all of them. :data:`TF32_CASES` are the ones
whose float32 products may run on TF32 tensor cores.
"""

from __future__ import annotations

from .cases import Ints, OpCase, Positive

CONV_GRADS = ("dx", "dw", "db")

CONV_CASES = (
    OpCase("conv2d k3 s1 p1", "conv2d", {"x": (2, 3, 6, 6), "w": (4, 3, 3, 3), "b": (4,)},
           {"padding": 1}, CONV_GRADS),
    OpCase("conv2d k3 s2 p1", "conv2d", {"x": (2, 3, 7, 8), "w": (4, 3, 3, 3), "b": (4,)},
           {"stride": 2, "padding": 1}, CONV_GRADS, seed=1),
    OpCase("conv2d k2x3 s(2,1) p((1,0),(0,2)) d(1,2)", "conv2d",
           {"x": (2, 2, 6, 7), "w": (3, 2, 2, 3), "b": (3,)},
           {"stride": (2, 1), "padding": ((1, 0), (0, 2)), "dilation": (1, 2)}, CONV_GRADS, seed=2),
    OpCase("conv2d k3 p2 d2 groups 2, no bias", "conv2d", {"x": (2, 4, 7, 7), "w": (6, 2, 3, 3)},
           {"padding": 2, "dilation": 2, "groups": 2}, ("dx", "dw", "db"), seed=3),
    OpCase("conv2d k5 s2 p2 depthwise", "conv2d", {"x": (2, 3, 9, 9), "w": (3, 1, 5, 5), "b": (3,)},
           {"stride": 2, "padding": 2, "groups": 3}, CONV_GRADS, seed=4),
    OpCase("conv2d k1", "conv2d", {"x": (2, 5, 4, 4), "w": (3, 5, 1, 1), "b": (3,)}, {},
           CONV_GRADS, seed=5),
)

POOL_CASES = (
    OpCase("max_pool2d k2 s2", "max_pool2d", {"x": (2, 3, 6, 7)}, {"kernel_size": 2}, seed=10),
    OpCase("max_pool2d k3 s2 p1", "max_pool2d", {"x": (2, 3, 7, 7)},
           {"kernel_size": 3, "stride": 2, "padding": 1}, seed=11),
    OpCase("max_pool2d k(3,2) s(1,2) p1 d(2,1) ceil", "max_pool2d", {"x": (2, 2, 8, 7)},
           {"kernel_size": (3, 2), "stride": (1, 2), "padding": 1, "dilation": (2, 1),
            "ceil_mode": True}, seed=12),
    OpCase("avg_pool2d k2 s2", "avg_pool2d", {"x": (2, 3, 6, 7)}, {"kernel_size": 2}, seed=13),
    OpCase("avg_pool2d k3 s2 p1", "avg_pool2d", {"x": (2, 3, 7, 7)},
           {"kernel_size": 3, "stride": 2, "padding": 1}, seed=14),
    OpCase("avg_pool2d k3 s2 p1 ceil, pad excluded", "avg_pool2d", {"x": (2, 2, 8, 7)},
           {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
            "count_include_pad": False}, seed=15),
)

COLUMN_CASES = (
    OpCase("im2col k3 s1 p1", "im2col", {"x": (2, 3, 5, 6)},
           {"kernel_size": 3, "padding": 1}, kind="single", seed=20),
    OpCase("im2col k(2,3) s(2,1) p1 d(1,2)", "im2col", {"x": (2, 2, 7, 8)},
           {"kernel_size": (2, 3), "stride": (2, 1), "padding": 1, "dilation": (1, 2)},
           kind="single", seed=21),
    OpCase("col2im k3 s1 p1", "col2im", {"cols": (2, 27, 30)},
           {"x_shape": (2, 3, 5, 6), "kernel_size": 3, "padding": 1}, kind="single", seed=22),
    OpCase("col2im k3 s2 p1 d2", "col2im", {"cols": (2, 18, 9)},
           {"x_shape": (2, 2, 7, 7), "kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2},
           kind="single", seed=23),
)

LOOP_CASES = CONV_CASES + POOL_CASES + COLUMN_CASES

OTHER_GPU_CASES = (
    OpCase("conv2d k3 p1 reflect", "conv2d", {"x": (2, 3, 6, 6), "w": (4, 3, 3, 3), "b": (4,)},
           {"padding": 1, "padding_mode": "reflect"}, CONV_GRADS, seed=30),
    OpCase("conv2d k3 p(1,2) circular", "conv2d", {"x": (2, 3, 6, 6), "w": (4, 3, 3, 3)},
           {"padding": (1, 2), "padding_mode": "circular"}, CONV_GRADS, seed=31),
    OpCase("conv1d k3 s2 p1 groups 2", "conv1d", {"x": (2, 4, 11), "w": (6, 2, 3), "b": (6,)},
           {"stride": 2, "padding": 1, "groups": 2}, CONV_GRADS, seed=32),
    OpCase("conv_transpose2d k3 s2 p1 op1", "conv_transpose2d",
           {"x": (2, 4, 4, 5), "w": (4, 3, 3, 3), "b": (3,)},
           {"stride": 2, "padding": 1, "output_padding": 1}, CONV_GRADS, seed=33),
    OpCase("conv_transpose2d k2 groups 2 d2", "conv_transpose2d",
           {"x": (2, 4, 4, 4), "w": (4, 2, 2, 2)}, {"groups": 2, "dilation": 2}, CONV_GRADS,
           seed=34),
    OpCase("max_pool2d k2 s2 with indices", "max_pool2d", {"x": (2, 3, 6, 6)},
           {"kernel_size": 2, "return_indices": True}, seed=35),
    OpCase("avg_pool2d k3 s1 p1 divisor 5", "avg_pool2d", {"x": (2, 3, 6, 6)},
           {"kernel_size": 3, "stride": 1, "padding": 1, "divisor_override": 5}, seed=36),
    OpCase("max_pool1d k3 s2 p1", "max_pool1d", {"x": (2, 3, 11)},
           {"kernel_size": 3, "stride": 2, "padding": 1}, seed=37),
    OpCase("avg_pool1d k3 s2 p1", "avg_pool1d", {"x": (2, 3, 11)},
           {"kernel_size": 3, "stride": 2, "padding": 1}, seed=38),
    OpCase("adaptive_avg_pool2d 3x2", "adaptive_avg_pool2d", {"x": (2, 3, 7, 5)},
           {"output_size": (3, 2)}, seed=39),
    OpCase("adaptive_max_pool2d 3x2", "adaptive_max_pool2d", {"x": (2, 3, 7, 5)},
           {"output_size": (3, 2)}, seed=40),
    OpCase("max_unpool2d k2 s2", "max_unpool2d", {"x": (2, 3, 3, 3), "indices": Ints((2, 3, 3, 3), 36)},
           {"kernel_size": 2}, seed=41),
    OpCase("interpolate nearest x2", "interpolate", {"x": (2, 3, 4, 5)},
           {"scale_factor": 2, "mode": "nearest"}, seed=42),
    OpCase("interpolate bilinear 7x9", "interpolate", {"x": (2, 3, 4, 5)},
           {"size": (7, 9), "mode": "bilinear", "align_corners": False}, seed=43),
    OpCase("interpolate bilinear aligned", "interpolate", {"x": (2, 3, 4, 5)},
           {"size": (6, 3), "mode": "bilinear", "align_corners": True}, seed=44),
    OpCase("conv2d k3 p1 depthwise x2", "conv2d", {"x": (2, 3, 6, 6), "w": (6, 1, 3, 3), "b": (6,)},
           {"padding": 1, "groups": 3}, CONV_GRADS, seed=56),
    OpCase("conv3d k3 s1 p1", "conv3d", {"x": (2, 2, 4, 5, 5), "w": (3, 2, 3, 3, 3), "b": (3,)},
           {"padding": 1}, CONV_GRADS, seed=57),
    OpCase("conv3d k(1,2,3) s(1,2,1) p(0,1,2) d(1,1,2) groups 2", "conv3d",
           {"x": (2, 4, 3, 6, 7), "w": (4, 2, 1, 2, 3)},
           {"stride": (1, 2, 1), "padding": (0, 1, 2), "dilation": (1, 1, 2), "groups": 2},
           CONV_GRADS, seed=58),
    OpCase("max_pool3d k2 s2", "max_pool3d", {"x": (2, 3, 4, 6, 5)}, {"kernel_size": 2}, seed=59),
    OpCase("max_pool3d k3 s2 p1 ceil with indices", "max_pool3d", {"x": (2, 2, 5, 6, 7)},
           {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
            "return_indices": True}, seed=60),
    OpCase("avg_pool3d k2 s2", "avg_pool3d", {"x": (2, 3, 4, 6, 5)}, {"kernel_size": 2}, seed=61),
    OpCase("avg_pool3d k3 s2 p1, pad excluded", "avg_pool3d", {"x": (2, 2, 5, 6, 7)},
           {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}, seed=62),
    OpCase("relu", "relu", {"x": (2, 3, 4, 5)}, seed=45),
    OpCase("leaky_relu 0.1", "leaky_relu", {"x": (2, 3, 4, 5)}, {"negative_slope": 0.1}, seed=46),
    OpCase("tanh", "tanh", {"x": (2, 3, 4, 5)}, seed=47),
    OpCase("sigmoid", "sigmoid", {"x": (2, 3, 4, 5)}, seed=48),
    OpCase("spatial_batchnorm train", "spatial_batchnorm",
           {"x": (4, 3, 5, 5), "gamma": (3,), "beta": (3,), "running_mean": (3,),
            "running_var": Positive((3,))}, {"train": True}, ("dx", "dgamma", "dbeta"), seed=49),
    OpCase("batchnorm eval", "batchnorm",
           {"x": (6, 4), "gamma": (4,), "beta": (4,), "running_mean": (4,),
            "running_var": Positive((4,))}, {"train": False}, ("dx", "dgamma", "dbeta"), seed=50),
    OpCase("layer_norm (4, 5)", "layer_norm", {"x": (2, 3, 4, 5), "gamma": (4, 5), "beta": (4, 5)},
           {"normalized_shape": (4, 5)}, ("dx", "dgamma", "dbeta"), seed=51),
    OpCase("group_norm 2 groups", "group_norm", {"x": (2, 4, 3, 3), "gamma": (4,), "beta": (4,)},
           {"num_groups": 2}, ("dx", "dgamma", "dbeta"), seed=52),
    OpCase("linear", "linear", {"x": (3, 2, 4), "w": (8, 5), "b": (5,)}, {}, CONV_GRADS, seed=53),
    OpCase("softmax_cross_entropy", "softmax_cross_entropy",
           {"scores": (6, 5), "y": Ints((6,), 5)}, grads=("dscores",), kind="loss", seed=54),
    OpCase("mse_loss", "mse_loss", {"pred": (3, 4), "target": (3, 4)}, grads=("dpred",),
           kind="loss", seed=55),
)

GPU_CASES = LOOP_CASES + OTHER_GPU_CASES
TF32_CASES = CONV_CASES + tuple(c for c in OTHER_GPU_CASES
                                if c.op in ("conv1d", "conv3d", "conv_transpose2d"))
