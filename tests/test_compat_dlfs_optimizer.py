"""The book's optimisers (fastconv.compat.dlfs): update(params, grads) in place, against
torch.optim and against the update formulas the book documents (its current code: Nesterov
as fixed in 2021, Adam with eps added to the uncorrected sqrt(v))."""

import numpy as np
import pytest

from fastconv.compat import dlfs
from torch_oracle import check


def randn(shape, seed, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


def book_params():
    return {"W1": randn((3, 4), 10), "b1": randn((4,), 11)}


def book_grads(step, scale=1.0):
    return {"W1": randn((3, 4), 20 + step, scale), "b1": randn((4,), 40 + step, scale)}


TORCH = {  # ours, torch class, torch kwargs (the book's defaults and its eps 1e-7)
    "SGD": (dlfs.SGD, {}, "SGD", dict(lr=0.01)),
    "Momentum": (dlfs.Momentum, {}, "SGD", dict(lr=0.01, momentum=0.9)),
    "Nesterov": (dlfs.Nesterov, dict(lr=0.05, momentum=0.8), "SGD",
                 dict(lr=0.05, momentum=0.8, nesterov=True)),
    "AdaGrad": (dlfs.AdaGrad, {}, "Adagrad", dict(lr=0.01, eps=1e-7)),
    "RMSprop": (dlfs.RMSprop, dict(decay_rate=0.9), "RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-7)),
}


@pytest.mark.parametrize("name", TORCH)
def test_book_optimizers_update_in_place_like_torch(torch, name):
    cls, ours_kwargs, torch_name, kwargs = TORCH[name]
    opt, params = cls(**ours_kwargs), book_params()
    arrays = dict(params)
    leaves = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in params.items()}
    topt = getattr(torch.optim, torch_name)(list(leaves.values()), **kwargs)
    for step in range(5):
        grads = book_grads(step)
        opt.update(params, grads)
        for k in leaves:
            leaves[k].grad = torch.from_numpy(grads[k].copy())
        topt.step()
        check(f"dlfs.{name}", np.float64, {k: (params[k], leaves[k].detach().numpy())
                                           for k in params})
    assert all(params[k] is arrays[k] for k in params)  # the same arrays, updated in place


def book_momentum(p, g, state, t, lr=0.01, mu=0.9):
    """``v = mu * v - lr * g; w += v``."""
    state["v"] = mu * state.get("v", 0.0) - lr * g
    p += state["v"]


def book_nesterov(p, g, state, t, lr=0.01, mu=0.9):
    """The book's form since 2021: ``w += mu**2 * v - (1 + mu) * lr * g; v = mu * v - lr * g``."""
    v = state.get("v", 0.0)
    p += mu * mu * v - (1 + mu) * lr * g
    state["v"] = mu * v - lr * g


def book_adam(p, g, state, t, lr=0.001, b1=0.9, b2=0.999):
    """``lr_t = lr * sqrt(1 - b2**t) / (1 - b1**t); w -= lr_t * m / (sqrt(v) + 1e-7)``."""
    m = state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * g
    v = state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * g * g
    p -= lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + 1e-7)


FORMULAS = {"Momentum": (dlfs.Momentum, book_momentum),
            "Nesterov": (dlfs.Nesterov, book_nesterov),
            "Adam": (dlfs.Adam, book_adam)}


@pytest.mark.parametrize("grad_scale", [1.0, 1e-6])
@pytest.mark.parametrize("name", FORMULAS)
def test_book_formulas_are_matched_to_rounding(name, grad_scale):
    """Gradients of 1e-6, the size of eps, are where Adam's eps placement shows (several times
    the book's step size if eps were added after the bias correction)."""
    cls, formula = FORMULAS[name]
    opt, ours, book = cls(), book_params(), book_params()
    states = {k: {} for k in book}
    for t in range(1, 21):
        grads = book_grads(t, grad_scale)
        start = {k: v.copy() for k, v in ours.items()}
        opt.update(ours, grads)
        for k in book:
            formula(book[k], grads[k], states[k], t)
            step, want = ours[k] - start[k], book[k] - start[k]
            np.testing.assert_allclose(step, want, rtol=1e-9, atol=0)  # steps, not weights
            np.testing.assert_allclose(ours[k], book[k], rtol=1e-15, atol=1e-15)
    assert getattr(opt, "iter", 20) == 20


def book_rmsprop(p, g, state, t, lr=0.01, decay_rate=0.99):
    """``h = decay_rate * h + (1 - decay_rate) * g**2; w -= lr * g / (sqrt(h) + 1e-7)``."""
    h = state["h"] = decay_rate * state.get("h", 0.0) + (1 - decay_rate) * g * g
    p -= lr * g / (np.sqrt(h) + 1e-7)


CHANGED_SETTINGS = {  # the book reads these attributes on every update
    "Momentum": (dlfs.Momentum, book_momentum, "momentum", "mu", (0.9, 0.5, 0.0)),
    "Nesterov": (dlfs.Nesterov, book_nesterov, "momentum", "mu", (0.9, 0.3, 0.7)),
    "RMSprop": (dlfs.RMSprop, book_rmsprop, "decay_rate", "decay_rate", (0.99, 0.5, 0.9)),
    "Adam beta1": (dlfs.Adam, book_adam, "beta1", "b1", (0.9, 0.5, 0.0)),
    "Adam beta2": (dlfs.Adam, book_adam, "beta2", "b2", (0.999, 0.9, 0.5)),
}


@pytest.mark.parametrize("name", CHANGED_SETTINGS)
def test_a_setting_changed_between_updates_is_used_as_the_book_uses_it(name):
    """Only lr was read again: the optimiser built on the first update kept its momentum,
    decay_rate and betas whatever the attributes said afterwards."""
    cls, formula, attribute, keyword, values = CHANGED_SETTINGS[name]
    opt, ours, book = cls(), book_params(), book_params()
    states = {k: {} for k in book}
    for t in range(1, 10):
        value = values[(t - 1) // 3]
        setattr(opt, attribute, value)
        grads = book_grads(t)
        opt.update(ours, grads)
        for k in book:
            formula(book[k], grads[k], states[k], t, **{keyword: value})
            np.testing.assert_allclose(ours[k], book[k], rtol=1e-13, atol=1e-15, err_msg=k)


def test_a_setting_changed_between_updates_is_checked_before_anything_changes():
    opt, params = dlfs.Adam(), book_params()
    opt.update(params, book_grads(0))
    before = {k: v.copy() for k, v in params.items()}
    opt.beta1 = 1.0
    with pytest.raises(ValueError, match=r"betas\[0\] must be in \[0.0, 1.0\)"):
        opt.update(params, book_grads(1))
    assert opt.iter == 1
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


def test_momentum_follows_the_book_only_while_the_learning_rate_is_constant():
    """Documented: the book's velocity carries each step's lr, fastconv's buffer does not."""
    opt, ours, book, state = dlfs.Momentum(lr=0.1), book_params(), book_params(), {}
    for t, lr in enumerate((0.1, 0.1, 0.01), 1):
        opt.lr = lr
        grads = book_grads(t)
        opt.update(ours, grads)
        book_momentum(book["W1"], grads["W1"], state, t, lr=lr)
    assert not np.allclose(ours["W1"], book["W1"], rtol=1e-6)


def test_book_optimizer_learning_rate_can_change_between_updates():
    params = book_params()
    opt = dlfs.SGD(lr=0.1)
    opt.update(params, book_grads(0))
    opt.lr = 0.01
    before = {k: v.copy() for k, v in params.items()}
    grads = book_grads(1)
    opt.update(params, grads)
    for k in params:
        np.testing.assert_allclose(params[k], before[k] - 0.01 * grads[k], rtol=1e-15)


BOOK_CLASSES = [dlfs.SGD, dlfs.Momentum, dlfs.Nesterov, dlfs.AdaGrad, dlfs.RMSprop, dlfs.Adam]


@pytest.mark.parametrize("cls", BOOK_CLASSES)
def test_book_optimizers_check_every_gradient_before_they_change_anything(cls):
    """A bad gradient for b1 was refused after W1 had been updated (and Adam's iter counted):
    the next good update then went from the wrong weights and bias correction."""
    opt, params, reference, twin = cls(), book_params(), book_params(), cls()
    opt.update(params, book_grads(0))
    twin.update(reference, book_grads(0))
    arrays = dict(params)
    good = book_grads(1)
    for bad in [dict(good, b1=np.ones(3)), dict(good, b1=good["b1"] + 0j),
                dict(good, b1=good["b1"].astype(object)), dict(good, b1=np.ones(4, np.int64)),
                {"W1": good["W1"]}, [good["W1"], good["b1"]], None]:
        with pytest.raises((TypeError, ValueError), match=r"'b1'|grads must be a name"):
            opt.update(params, bad)
        for k in params:
            np.testing.assert_array_equal(params[k], reference[k], err_msg=k)
    assert getattr(opt, "iter", 1) == 1
    opt.update(params, good)  # as if the refused updates had not been tried
    twin.update(reference, good)
    for k in params:
        assert params[k] is arrays[k]
        np.testing.assert_array_equal(params[k], reference[k], err_msg=k)


def test_book_optimizer_checks_a_changed_learning_rate_and_the_first_update_too():
    opt, params = dlfs.Adam(), book_params()
    with pytest.raises(ValueError, match=r"grads\['b1'\] has shape"):
        opt.update(params, dict(book_grads(0), b1=np.ones(3)))
    assert opt.iter == 0 and opt._optimizer is None
    opt.update(params, book_grads(0))
    opt.lr = -0.1  # an attribute the optimiser does not check when it is set
    before = {k: v.copy() for k, v in params.items()}
    with pytest.raises(ValueError, match="lr must be >= 0"):
        opt.update(params, book_grads(1))
    assert opt.iter == 1
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
    with pytest.raises(TypeError, match="params must be a name -> array mapping"):
        dlfs.SGD().update([np.ones(3)], {"0": np.ones(3)})


@pytest.mark.gpu
def test_book_optimizer_state_lives_on_the_gpu():
    import cupy
    params = {"W": cupy.asarray(randn((3, 4), 1))}
    opt = dlfs.Adam()
    opt.update(params, {"W": cupy.asarray(randn((3, 4), 2))})
    assert isinstance(opt._optimizer.state["W"]["exp_avg"], cupy.ndarray)
