"""The live ``name -> array`` views of a module tree: ``Module.params``, ``grads``, ``buffers``."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from .._typing import Array


class NamedArrays(MutableMapping[str, Array]):
    """Live ``name -> array`` view over one kind of array in a module tree.

    Keys without a dot are the module's own arrays; "child.rest" is routed to
    the child. Setting an existing key replaces the array in the module that
    owns it, with one of the same shape; a new key is a KeyError, another
    shape a ValueError (a module adds its arrays with ``add_param`` /
    ``add_buffer``, which keeps params and grads in step).

    Parameters
    ----------
    module : fastconv.nn.Module
        The root of the tree.
    kind : {'params', 'grads', 'buffers'}
        Which arrays.

    Examples
    --------
    >>> from fastconv.nn import Linear, ReLU, Sequential
    >>> model = Sequential(Linear(4, 3, seed=0), ReLU(), Linear(3, 2, seed=1))
    >>> list(model.params), model.params["2.W"].shape
    (['0.W', '0.b', '2.W', '2.b'], (3, 2))
    """

    def __init__(self, module: Any, kind: str) -> None:
        self._module = module
        self._kind = kind

    def _owner(self, key: str) -> tuple[dict[str, Array], str]:
        """(dict that holds ``key``, local name); KeyError naming ``key`` otherwise."""
        module, rest = self._module, key
        while "." in rest:
            head, rest = rest.split(".", 1)
            child = module._children.get(head)
            if child is None:
                raise KeyError(key)
            module = child
        return module._own[self._kind], rest

    def __getitem__(self, key: str) -> Array:
        own, name = self._owner(key)
        if name not in own:
            raise KeyError(key)
        return own[name]

    def __setitem__(self, key: str, value: Array) -> None:
        own, name = self._owner(key)
        if name not in own:
            raise KeyError(f"{key}: no such entry in {self._kind}; a module adds its own "
                           "arrays with add_param or add_buffer")
        shape = tuple(getattr(value, "shape", ()))
        if shape != tuple(own[name].shape):
            raise ValueError(f"{self._kind}[{key!r}] has shape {tuple(own[name].shape)}, "
                             f"got an array of shape {shape}")
        own[name] = value

    def __delitem__(self, key: str) -> None:
        own, name = self._owner(key)
        if name not in own:
            raise KeyError(key)
        del own[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._module._own[self._kind]
        for child_name, child in self._module._children.items():
            for key in NamedArrays(child, self._kind):
                yield f"{child_name}.{key}"

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k!r}: {tuple(v.shape)}" for k, v in self.items())
        return f"{self._kind}({{{shapes}}})"
