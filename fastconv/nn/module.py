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

from collections.abc import MutableMapping

from ..backend import device_of, get_array_module, is_array, model_device, resolve_device, to_device

_KINDS = ("params", "grads", "buffers")


class NamedArrays(MutableMapping):
    """Live ``name -> array`` view over one kind of array in a module tree.

    Keys without a dot are the module's own arrays; "child.rest" is routed to
    the child. Setting an existing key replaces the array in the module that
    owns it, with one of the same shape; a new key is an error (a module adds
    its arrays with ``add_param``/``add_buffer``, which keeps params and grads
    in step).
    """

    def __init__(self, module, kind):
        self._module = module
        self._kind = kind

    def _owner(self, key):
        """(dict that holds ``key``, local name); KeyError naming ``key`` otherwise."""
        module, rest = self._module, key
        while "." in rest:
            head, rest = rest.split(".", 1)
            child = module._children.get(head)
            if child is None:
                raise KeyError(key)
            module = child
        return module._own[self._kind], rest

    def __getitem__(self, key):
        own, name = self._owner(key)
        if name not in own:
            raise KeyError(key)
        return own[name]

    def __setitem__(self, key, value):
        own, name = self._owner(key)
        if name not in own:
            raise KeyError(f"{key}: no such entry in {self._kind}; a module adds its own "
                           "arrays with add_param or add_buffer")
        shape = tuple(getattr(value, "shape", ()))
        if shape != tuple(own[name].shape):
            raise ValueError(f"{self._kind}[{key!r}] has shape {tuple(own[name].shape)}, "
                             f"got an array of shape {shape}")
        own[name] = value

    def __delitem__(self, key):
        own, name = self._owner(key)
        if name not in own:
            raise KeyError(key)
        del own[name]

    def __iter__(self):
        yield from self._module._own[self._kind]
        for child_name, child in self._module._children.items():
            for key in NamedArrays(child, self._kind):
                yield f"{child_name}.{key}"

    def __len__(self):
        return sum(1 for _ in self)

    def __repr__(self):
        shapes = ", ".join(f"{k!r}: {tuple(v.shape)}" for k, v in self.items())
        return f"{self._kind}({{{shapes}}})"


class Module:
    """Base class of every layer and network: params/grads/buffers, forward/backward.

    Subclasses call ``super().__init__()``, register arrays with
    ``add_param(name, array)`` / ``add_buffer(name, array)`` and child modules
    with ``add_module(name, module)``, and implement ``forward`` and ``backward``.
    """

    def __init__(self):
        self._own = {kind: {} for kind in _KINDS}
        self._children = {}
        self.training = True

    # -- registration ------------------------------------------------------
    def add_param(self, name, array):
        """Register a trainable array and a zero gradient of the same shape."""
        xp = get_array_module(array)
        self._own["params"][name] = array
        self._own["grads"][name] = xp.zeros_like(array)

    def add_buffer(self, name, array):
        """Register an array that is saved with the module but not trained."""
        self._own["buffers"][name] = array

    def add_module(self, name, module):
        """Register a child module; its arrays appear here as "name.<key>"."""
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

    def modules(self):
        """This module and every module below it (a list: modules compare by identity)."""
        tree = [self]
        for child in self._children.values():
            tree.extend(child.modules())
        return tree

    @property
    def params(self):
        """Trainable arrays by name (a live view; containers prefix child names)."""
        return NamedArrays(self, "params")

    @params.setter
    def params(self, values):
        # The course solver assigns ``model.params = best_params`` at the end of training.
        self.load_state_dict(values, strict=False)

    @property
    def grads(self):
        """Gradients by name, filled by ``backward``; same keys as ``params``."""
        return NamedArrays(self, "grads")

    @property
    def buffers(self):
        """Non-trained saved state by name (e.g. batchnorm running statistics)."""
        return NamedArrays(self, "buffers")

    def children(self):
        """The direct child modules, in registration order."""
        return list(self._children.values())

    # -- computation -------------------------------------------------------
    def forward(self, x):
        """Compute the output for ``x`` and keep what ``backward`` needs."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dout):
        """Return dL/dx for the last ``forward`` and store dL/dparam in ``grads``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, x):
        return self.forward(x)

    def _take_cache(self):
        """The cache of the last forward; a clear error if forward has not run."""
        cache = getattr(self, "_cache", None)
        if cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return cache

    def zero_grad(self):
        """Set every gradient to zero."""
        for key, g in self.grads.items():
            self.grads[key] = get_array_module(g).zeros_like(g)

    # -- modes and devices -------------------------------------------------
    def train(self, mode=True):
        """Switch this module and its children to training mode (or eval with ``mode=False``)."""
        if not isinstance(mode, bool):  # train("False") would be truthy
            raise TypeError(f"train(mode): mode must be a bool, got {mode!r}")
        self.training = mode
        for child in self._children.values():
            child.train(mode)
        return self

    def eval(self):
        """Switch this module and its children to evaluation mode."""
        return self.train(False)

    @property
    def device(self):
        """'cpu' or 'gpu': where the module's first array lives ('cpu' if it has none)."""
        return model_device(self)

    def to(self, device):
        """Move every param, grad and buffer (recursively) to ``device``; returns self."""
        device = resolve_device(device)
        for kind in _KINDS:
            own = self._own[kind]
            for name in own:
                own[name] = to_device(own[name], device)
        for child in self._children.values():
            child.to(device)
        return self

    # -- saving and loading ------------------------------------------------
    def state_dict(self):
        """A dict of copies of every param and buffer, keyed by name (arrays stay on their device)."""
        state = {}
        for kind in ("params", "buffers"):
            for key, value in NamedArrays(self, kind).items():
                state[key] = value.copy()
        return state

    def load_state_dict(self, state, strict=True):
        """Copy arrays from ``state`` into this module's params and buffers, in place.

        Every expected key must be present (a ValueError names a missing key)
        and match its shape (the error names the key and both shapes). With
        ``strict`` an unexpected key is an error too. Values are real-valued
        arrays, converted to the dtype and device of the array they replace; all
        are checked and converted before any is copied, so a bad entry leaves
        the module unchanged.
        """
        expected = {}
        for kind in ("params", "buffers"):
            for key, value in NamedArrays(self, kind).items():
                expected[key] = (kind, value)
        missing = [k for k in expected if k not in state]
        if missing and strict:
            raise ValueError(f"state dict is missing {missing[0]!r}"
                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        if strict:
            unexpected = [k for k in state if k not in expected]
            if unexpected:
                raise ValueError(f"state dict has unexpected key {unexpected[0]!r}; "
                                 f"this {type(self).__name__} has {sorted(expected)}")
        converted = {}
        for key, (kind, current) in expected.items():
            if key not in state:
                continue
            value = state[key]
            if not is_array(value) or value.dtype.kind not in "biuf":
                raise TypeError(f"state dict entry {key!r} must be a real-valued array, got "
                                f"{getattr(value, 'dtype', type(value).__name__)}")
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(f"state dict entry {key!r} has shape {tuple(value.shape)}, "
                                 f"the module's {key!r} has shape {tuple(current.shape)}")
            converted[key] = to_device(value, device_of(current)).astype(current.dtype, copy=False)
        for key, value in converted.items():
            expected[key][1][...] = value
        return self

    def __repr__(self):
        if not self._children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in self._children.items():
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        lines.append(")")
        return "\n".join(lines)

    def extra_repr(self):
        """The constructor arguments shown by ``repr``; layers override it."""
        return ""


class Sequential(Module):
    """Layers applied in order; child names are their positions "0", "1", ...

    ``backward`` runs the layers in reverse, each filling its own ``grads``.
    """

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)

    def __len__(self):
        return len(self._children)

    def __getitem__(self, index):
        """The layer at ``index``; a slice gives a Sequential of those layers (as torch's)."""
        layers = list(self._children.values())
        return Sequential(*layers[index]) if isinstance(index, slice) else layers[index]

    def __iter__(self):
        return iter(self._children.values())

    def append(self, layer):
        """Add ``layer`` at the end; returns self."""
        self.add_module(str(len(self._children)), layer)
        return self

    def forward(self, x):
        """Apply each layer in order."""
        for layer in self._children.values():
            x = layer.forward(x)
        return x

    def backward(self, dout):
        """Back-propagate through the layers in reverse; returns dL/dx of the first layer."""
        for layer in reversed(list(self._children.values())):
            dout = layer.backward(dout)
        return dout
