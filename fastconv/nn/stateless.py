"""Layers without parameters that wrap one functional forward/backward pair."""

from .module import Module


class FunctionalLayer(Module):
    """A parameter-free layer: ``forward`` calls ``forward_fn(x, **options)``.

    Subclasses set ``forward_fn`` and ``backward_fn`` (functional ops of the
    ``(out, cache)`` / ``backward(dout, cache)`` convention) and pass the op's
    keyword options to ``__init__``; the cache of the last forward is kept for
    ``backward``.
    """

    forward_fn = None
    backward_fn = None

    def __init__(self, **options):
        super().__init__()
        self.options = options
        self._cache = None

    def forward(self, x):
        """Apply the op to ``x``; keeps the cache for ``backward``."""
        out, self._cache = type(self).forward_fn(x, **self.options)
        return out

    def backward(self, dout):
        """dL/dx of the last forward."""
        return type(self).backward_fn(dout, self._take_cache())

    def extra_repr(self):
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())
