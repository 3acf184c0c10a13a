"""The PyTorch twin of a fastconv model: the same network, layer for layer, with its weights.

:func:`build_twin` reads the fastconv model's own layer list (a
:class:`~fastconv.nn.Sequential`) or, for the course
:class:`~fastconv.nn.ThreeLayerConvNet`, its fixed conv - relu - pool - affine -
relu - affine structure, builds the matching ``torch.nn`` modules and copies
every parameter and buffer into them. The :class:`Link` list records where each
fastconv array went, so gradients can be read back in fastconv's layout:
fastconv's Linear ``W`` is (in_features, out_features), torch's weight the
transpose. :class:`TorchStep` is one training step of the twin with the loss
fastconv's ``model.loss`` computes: softmax cross-entropy plus
``0.5 * reg * sum(W**2)`` over the model's weights.
"""

from dataclasses import dataclass

import numpy as np

from ..backend import as_numpy
from ..nn.models import ThreeLayerConvNet
from ..nn.module import Sequential
from ..nn.stateless import FunctionalLayer

# fastconv's local array names -> torch's attribute names (Conv2d, Linear, BatchNorm)
TORCH_NAMES = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias",
               "running_mean": "running_mean", "running_var": "running_var"}


@dataclass(frozen=True)
class Link:
    """Where one fastconv array lives in the twin.

    ``fastconv``: its name in ``model.params``/``model.buffers``; ``torch``: the
    dotted name in the twin; ``transposed``: True for a Linear weight; ``buffer``:
    True for running statistics (copied, never compared as gradients).
    """

    fastconv: str
    torch: str
    transposed: bool = False
    buffer: bool = False


def _torch_layer(nn, layer):
    """The torch.nn module computing what the fastconv ``layer`` computes (ValueError if none)."""
    name = type(layer).__name__
    # parameter-free layers share torch's class names and keyword options
    if isinstance(layer, FunctionalLayer) or name == "Flatten":
        return getattr(nn, name)(**getattr(layer, "options", {}))
    if name == "Conv2d":
        return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                         stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                         groups=layer.groups, bias="b" in layer.params,
                         padding_mode=layer.padding_mode)
    if name == "Linear":
        return nn.Linear(layer.in_features, layer.out_features, bias="b" in layer.params)
    if name in ("BatchNorm1d", "BatchNorm2d"):
        return getattr(nn, name)(layer.num_features, eps=layer.eps, momentum=layer.momentum)
    raise ValueError(f"no PyTorch twin for a {name} layer (a Dropout's random masks cannot be "
                     "matched: build the model with dropout=0)")


def _layer_links(index, layer):
    """The links of one layer of a Sequential at position ``index``."""
    transposed = type(layer).__name__ == "Linear"
    links = [Link(f"{index}.{k}", f"{index}.{TORCH_NAMES[k]}", transposed and k == "W")
             for k in layer.params]
    links += [Link(f"{index}.{k}", f"{index}.{TORCH_NAMES[k]}", buffer=True) for k in layer.buffers]
    return links


def _sequential_twin(nn, model):
    modules, links = [], []
    for i, layer in enumerate(model):
        modules.append(_torch_layer(nn, layer))
        links += _layer_links(i, layer)
    return nn.Sequential(*modules), links


def _convnet_twin(nn, model):
    """conv - relu - 2x2 max pool - flatten - affine - relu - affine, as ThreeLayerConvNet.forward."""
    w1, w2, w3 = (model.params[k].shape for k in ("W1", "W2", "W3"))
    k = model.filter_size
    module = nn.Sequential(nn.Conv2d(w1[1], w1[0], k, padding=(k - 1) // 2), nn.ReLU(),
                           nn.MaxPool2d(2, 2), nn.Flatten(), nn.Linear(*w2), nn.ReLU(),
                           nn.Linear(*w3))
    links = [Link("W1", "0.weight"), Link("b1", "0.bias"), Link("W2", "4.weight", True),
             Link("b2", "4.bias"), Link("W3", "6.weight", True), Link("b3", "6.bias")]
    return module, links


class Twin:
    """A torch module built from a fastconv model, holding copies of its weights.

    Parameters
    ----------
    model : fastconv.nn.Module
        A Sequential model (``build_model("cnn", ...)`` and the other layer stacks) or a
        ThreeLayerConvNet (``build_model("convnet", ...)``).
    device : str
        The torch device, "cpu" or "cuda". The twin takes the model's dtype.
    """

    def __init__(self, model, device="cpu"):
        import torch
        if isinstance(model, ThreeLayerConvNet):
            self.module, self.links = _convnet_twin(torch.nn, model)
        elif isinstance(model, Sequential):
            self.module, self.links = _sequential_twin(torch.nn, model)
        else:
            raise ValueError(f"no PyTorch twin for a {type(model).__name__} model: a Sequential "
                             "of layers or a ThreeLayerConvNet is needed")
        dtype = next(iter(model.params.values())).dtype
        self.module.to(device=device, dtype=getattr(torch, dtype.name))
        self.device = device
        self.copy_from(model)

    def tensor(self, link):
        """The twin's tensor that ``link`` names."""
        get = self.module.get_buffer if link.buffer else self.module.get_parameter
        return get(link.torch)

    def copy_from(self, model):
        """Copy every parameter and buffer of the fastconv ``model`` into the twin."""
        import torch
        with torch.no_grad():
            for link in self.links:
                kind = model.buffers if link.buffer else model.params
                value = as_numpy(kind[link.fastconv])
                self.tensor(link).copy_(torch.from_numpy(np.ascontiguousarray(
                    value.T if link.transposed else value)))

    def grads(self):
        """The twin's parameter gradients as NumPy arrays, keyed and laid out as fastconv's."""
        out = {}
        for link in self.links:
            if not link.buffer:
                g = self.tensor(link).grad.detach().cpu().numpy()
                out[link.fastconv] = g.T if link.transposed else g
        return out

    def weights(self, names):
        """The twin's tensors of the fastconv parameters ``names`` (the L2-penalised weights)."""
        by_name = {link.fastconv: link for link in self.links}
        return [self.tensor(by_name[name]) for name in names]


class TorchStep:
    """One training step of a twin, run by calling it: forward, loss, backward, SGD update.

    The loss is fastconv's: mean softmax cross-entropy plus ``0.5 * reg * sum(W**2)``
    over the weights the fastconv model penalises. The parts are methods so that the
    per-layer-type timing can wrap them.
    """

    def __init__(self, twin, x, y, lr, reg, weight_names):
        import torch
        self.twin = twin
        self.x = torch.from_numpy(np.ascontiguousarray(as_numpy(x))).to(twin.device)
        self.y = torch.from_numpy(as_numpy(y).astype(np.int64)).to(twin.device)
        self.reg = reg
        self.weights = twin.weights(weight_names) if reg else []
        self.optimizer = torch.optim.SGD(twin.module.parameters(), lr=lr)

    def loss_of(self, scores):
        """Softmax cross-entropy of ``scores`` plus the L2 penalty (a 0-d tensor)."""
        import torch
        loss = torch.nn.functional.cross_entropy(scores, self.y)
        if self.reg:
            loss = loss + 0.5 * self.reg * sum((w * w).sum() for w in self.weights)
        return loss

    def backward(self, loss):
        """Gradients of ``loss`` into every parameter's ``.grad`` (cleared first)."""
        self.optimizer.zero_grad()
        loss.backward()

    def update(self):
        """One SGD step on the gradients."""
        self.optimizer.step()

    def loss_and_grads(self):
        """Forward, loss and backward; returns the loss as a float (no update)."""
        loss = self.loss_of(self.twin.module(self.x))
        self.backward(loss)
        return float(loss.detach())

    def __call__(self):
        self.loss_and_grads()
        self.update()

    def scores(self):
        """Eval-mode class scores of the input as NumPy (the forward-output check)."""
        import torch
        module = self.twin.module
        module.eval()
        try:
            with torch.no_grad():
                return module(self.x).cpu().numpy()
        finally:
            module.train()
