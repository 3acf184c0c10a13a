"""The Module base class and the Sequential container.

A Module holds three named collections of arrays: ``params`` (what training
changes), ``grads`` (filled by ``backward``, same keys and shapes as ``params``)
and ``buffers`` (state that is saved but not trained, e.g. batchnorm running
statistics). A container's collections are live views over its children's,
their names prefixed with the child's name ("0.W", "3.running_mean"), so an
optimizer that reads ``model.params[k]`` and writes ``model.params[k] = new``
updates the layer that owns the array.

``forward(x)`` computes the output and keeps what ``backward(dout)`` needs;
``backward`` returns dx and fills ``grads``. Every layer is written against
``xp = get_array_module(x)``, so a network whose arrays live on the GPU runs on
CuPy unchanged; ``to(device)`` moves all of a module's arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .._typing import Array
from ..backend import device_of, get_array_module, is_array, model_device, resolve_device, to_device
from .named_arrays import NamedArrays

_KINDS = ("params", "grads", "buffers")  # NamedArrays' kinds


class Module:
    """Base class of every layer and network: params/grads/buffers, forward/backward.

    Subclasses call ``super().__init__()``, register arrays with
    ``add_param(name, array)`` / ``add_buffer(name, array)`` and child modules
    with ``add_module(name, module)``, and implement ``forward`` and ``backward``.

    Attributes
    ----------
    training : bool
        True in training mode (the default), False in eval mode.

    Examples
    --------
    >>> import numpy as np
    >>> class Scale(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.add_param("s", np.array([2.0]))
    ...     def forward(self, x):
    ...         self.x = x
    ...         return self.params["s"] * x
    ...     def backward(self, dout):
    ...         self.grads["s"] = np.array([(dout * self.x).sum()])
    ...         return dout * self.params["s"]
    >>> layer = Scale()
    >>> layer.forward(np.array([1.0, 3.0])), layer.backward(np.ones(2)), layer.grads["s"]
    (array([2., 6.]), array([2., 2.]), array([4.]))
    """

    def __init__(self) -> None:
        self._own: dict[str, dict[str, Array]] = {kind: {} for kind in _KINDS}
        self._children: dict[str, Module] = {}
        self.training = True

    # -- registration ------------------------------------------------------
    def add_param(self, name: str, array: Array) -> None:
        """Register a trainable array and a zero gradient of the same shape.

        Parameters
        ----------
        name : str
            Its name, without a dot.
        array : array
            The parameter.
        """
        xp = get_array_module(array)
        self._own["params"][name] = array
        self._own["grads"][name] = xp.zeros_like(array)

    def add_buffer(self, name: str, array: Array) -> None:
        """Register an array that is saved with the module but not trained.

        Parameters
        ----------
        name : str
            Its name, without a dot.
        array : array
            The buffer.
        """
        self._own["buffers"][name] = array

    def add_module(self, name: str, module: Module) -> Module:
        """Register a child module; its arrays appear here as "name.<key>".

        Parameters
        ----------
        name : str
            Its name, without a dot.
        module : Module
            The child; a module not already in this tree.

        Returns
        -------
        Module
            ``module``.

        Raises
        ------
        TypeError
            When ``module`` is not a Module.
        ValueError
            When ``name`` holds a dot, or ``module`` is already in the tree.
        """
        if not isinstance(module, Module):
            raise TypeError(f"child {name!r} must be a fastconv.nn.Module, got {type(module).__name__}")
        if "." in str(name):
            raise ValueError(f"module names may not contain '.', got {name!r}")
        here = {id(m) for m in self.modules()}
        if any(id(m) in here for m in module.modules()):
            raise ValueError(
                f"child {name!r} ({type(module).__name__}) is already in this network: a module "
                "keeps the cache of its last forward, so each position needs its own instance")
        self._children[str(name)] = module
        return module

    def modules(self) -> list[Module]:
        """This module and every module below it (a list: modules compare by identity)."""
        tree = [self]
        for child in self._children.values():
            tree.extend(child.modules())
        return tree

    @property
    def params(self) -> NamedArrays:
        """Trainable arrays by name (a live view; containers prefix child names)."""
        return NamedArrays(self, "params")

    @params.setter
    def params(self, values: Mapping[str, Array]) -> None:
        # The course solver assigns ``model.params = best_params`` at the end of training.
        self.load_state_dict(values, strict=False)

    @property
    def grads(self) -> NamedArrays:
        """Gradients by name, filled by ``backward``; same keys as ``params``."""
        return NamedArrays(self, "grads")

    @property
    def buffers(self) -> NamedArrays:
        """Non-trained saved state by name (e.g. batchnorm running statistics)."""
        return NamedArrays(self, "buffers")

    def children(self) -> list[Module]:
        """The direct child modules, in registration order."""
        return list(self._children.values())

    # -- computation -------------------------------------------------------
    def forward(self, x: Array) -> Any:
        """Compute the output for ``x`` and keep what ``backward`` needs.

        Parameters
        ----------
        x : array
            The input.

        Returns
        -------
        array
            The output.

        Raises
        ------
        NotImplementedError
            In a subclass that does not implement it.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dout: Array) -> Any:
        """Return dL/dx for the last ``forward`` and store dL/dparam in ``grads``.

        Parameters
        ----------
        dout : array
            The gradient of the loss with respect to the last output.

        Returns
        -------
        array
            The gradient with respect to the last input.

        Raises
        ------
        NotImplementedError
            In a subclass that does not implement it.
        RuntimeError
            When no forward has run.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, x: Array) -> Any:
        return self.forward(x)

    def _take_cache(self) -> Any:
        """The cache of the last forward; a clear error if forward has not run."""
        cache = getattr(self, "_cache", None)
        if cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return cache

    def zero_grad(self) -> None:
        """Set every gradient to zero."""
        for key, g in self.grads.items():
            self.grads[key] = get_array_module(g).zeros_like(g)

    # -- modes and devices -------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Switch this module and its children to training mode (or eval with ``mode=False``).

        Parameters
        ----------
        mode : bool, default True
            True: training mode; False: eval mode.

        Returns
        -------
        Module
            self.

        Raises
        ------
        TypeError
            When ``mode`` is not a bool.
        """
        if not isinstance(mode, bool):  # train("False") would be truthy
            raise TypeError(f"train(mode): mode must be a bool, got {mode!r}")
        self.training = mode
        for child in self._children.values():
            child.train(mode)
        return self

    def eval(self) -> Module:
        """Switch this module and its children to evaluation mode; returns self."""
        return self.train(False)

    @property
    def device(self) -> str:
        """'cpu' or 'gpu': where the module's first array lives ('cpu' if it has none)."""
        return model_device(self)

    def to(self, device: str | None) -> Module:
        """Move every param, grad and buffer (recursively) to ``device``.

        Parameters
        ----------
        device : {'cpu', 'gpu', 'auto', None}
            Where to (see :func:`fastconv.backend.resolve_device`).

        Returns
        -------
        Module
            self.

        Raises
        ------
        ValueError
            When ``device`` is not a device name.
        RuntimeError
            When the GPU is asked for and none is usable.
        """
        device = resolve_device(device)
        for kind in _KINDS:
            own = self._own[kind]
            for name in own:
                own[name] = to_device(own[name], device)
        for child in self._children.values():
            child.to(device)
        return self

    # -- saving and loading ------------------------------------------------
    def state_dict(self) -> dict[str, Array]:
        """A dict of copies of every param and buffer, keyed by name (arrays stay on their device)."""
        return {key: value.copy() for kind in ("params", "buffers")
                for key, value in NamedArrays(self, kind).items()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> Module:
        """Copy arrays from ``state`` into this module's params and buffers, in place.

        All entries are checked and converted (copied where they may share
        memory with the module's arrays) before any is copied in, so a bad
        entry leaves the module unchanged and each is read as it was passed.

        Parameters
        ----------
        state : mapping of str to array
            Real-valued arrays, converted to the dtype and device of the array
            each replaces.
        strict : bool, default True
            Every expected key must be present and no other; False: keys
            missing from ``state`` are left as they are.

        Returns
        -------
        Module
            self.

        Raises
        ------
        ValueError
            Naming the key: a key missing or unexpected (``strict``), or an
            array of another shape (the error names both shapes).
        TypeError
            When an entry is not a real-valued array.
        """
        expected = {key: value for kind in ("params", "buffers")
                    for key, value in NamedArrays(self, kind).items()}
        missing = [k for k in expected if k not in state]
        if missing and strict:
            raise ValueError(f"state dict is missing {missing[0]!r}"
                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        unexpected = [k for k in state if k not in expected] if strict else []
        if unexpected:
            raise ValueError(f"state dict has unexpected key {unexpected[0]!r}; "
                             f"this {type(self).__name__} has {sorted(expected)}")
        converted = {}
        for key, current in expected.items():
            if key not in state:
                continue
            value = state[key]
            if not is_array(value) or value.dtype.kind not in "biuf":
                raise TypeError(f"state dict entry {key!r} must be a real-valued array, got "
                                f"{getattr(value, 'dtype', type(value).__name__)}")
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(f"state dict entry {key!r} has shape {tuple(value.shape)}, "
                                 f"the module's {key!r} has shape {tuple(current.shape)}")
            value = to_device(value, device_of(current)).astype(current.dtype, copy=False)
            # Copied in one by one, an entry aliasing another key's array would read it changed.
            if any(device_of(a) == device_of(value)
                   and get_array_module(a).may_share_memory(value, a) for a in expected.values()):
                value = value.copy()
            converted[key] = value
        for key, value in converted.items():
            expected[key][...] = value
        return self

    def __repr__(self) -> str:
        if not self._children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in self._children.items():
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        lines.append(")")
        return "\n".join(lines)

    def extra_repr(self) -> str:
        """The constructor arguments shown by ``repr``; layers override it."""
        return ""


class Sequential(Module):
    """Layers applied in order; child names are their positions "0", "1", ...

    ``backward`` runs the layers in reverse, each filling its own ``grads``.
    Indexing gives a layer, slicing a Sequential of those layers (as torch's).

    Parameters
    ----------
    *layers : Module
        The layers, each a module of its own.

    Raises
    ------
    TypeError
        When a layer is not a Module.
    ValueError
        When a layer appears twice.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import Flatten, Linear, ReLU
    >>> model = Sequential(Flatten(), Linear(12, 4, seed=0), ReLU())
    >>> out = model.forward(np.ones((2, 3, 4), np.float32))
    >>> out.shape, model.backward(np.ones_like(out)).shape, len(model)
    ((2, 4), (2, 3, 4), 3)
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)

    def __len__(self) -> int:
        return len(self._children)

    def __getitem__(self, index: Any) -> Any:
        """The layer at ``index``; a slice gives a Sequential of those layers (as torch's)."""
        layers = list(self._children.values())
        return Sequential(*layers[index]) if isinstance(index, slice) else layers[index]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._children.values())

    def append(self, layer: Module) -> Sequential:
        """Add ``layer`` at the end; returns self.

        Parameters
        ----------
        layer : Module
            A module not already in the tree.

        Returns
        -------
        Sequential
            self.
        """
        self.add_module(str(len(self._children)), layer)
        return self

    def forward(self, x: Array) -> Any:
        """Apply each layer in order.

        Parameters
        ----------
        x : array
            The first layer's input.

        Returns
        -------
        array
            The last layer's output.
        """
        for layer in self._children.values():
            x = layer.forward(x)
        return x

    def backward(self, dout: Array) -> Any:
        """Back-propagate through the layers in reverse.

        Parameters
        ----------
        dout : array
            The gradient of the loss with respect to the last layer's output.

        Returns
        -------
        array
            dL/dx of the first layer.
        """
        for layer in reversed(list(self._children.values())):
            dout = layer.backward(dout)
        return dout
