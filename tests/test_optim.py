"""fastconv.optim: optimiser objects vs torch.optim step for step, schedules vs
torch.optim.lr_scheduler, and the CS231n update rules vs the course notebook's check values."""

import re

import numpy as np
import pytest

from fastconv import optim
from torch_oracle import check

STEPS = 6


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {"W1": rng.standard_normal((3, 4)).astype(dtype),
            "b1": rng.standard_normal(4).astype(dtype)}


def grads_for(params, step, dtype):
    rng = np.random.default_rng(100 + step)
    return {k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}


OPTIMIZERS = {  # name: (ours, torch's class name, shared kwargs, our-only, torch-only kwargs)
    "sgd": (optim.SGD, "SGD", dict(lr=0.1), {}, {}),
    "sgd weight decay": (optim.SGD, "SGD", dict(lr=0.1, weight_decay=0.05), {}, {}),
    "momentum": (optim.SGD, "SGD", dict(lr=0.05, momentum=0.9), {}, {}),
    "nesterov": (optim.SGD, "SGD", dict(lr=0.05, momentum=0.8, nesterov=True,
                                        weight_decay=0.01), {}, {}),
    "rmsprop": (optim.RMSProp, "RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6), {}, {}),
    "rmsprop weight decay": (optim.RMSProp, "RMSprop", dict(lr=0.01, weight_decay=0.1), {}, {}),
    "adagrad": (optim.AdaGrad, "Adagrad", dict(lr=0.1, eps=1e-10), {}, {}),
    "adam": (optim.Adam, "Adam", dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6), {}, {}),
    "adam weight decay": (optim.Adam, "Adam", dict(lr=0.01, weight_decay=0.1), {}, {}),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_matches_torch_optim(torch, name, dtype):
    ours_cls, torch_name, kwargs, _, _ = OPTIMIZERS[name]
    params = make_params(dtype)
    leaves = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in params.items()}
    opt = ours_cls(params, **kwargs)
    topt = getattr(torch.optim, torch_name)(list(leaves.values()), **kwargs)
    ids = {k: id(v) for k, v in params.items()}
    for step in range(STEPS):
        if step == 3:  # a learning-rate change part-way, as a schedule does
            opt.lr /= 2
            for group in topt.param_groups:
                group["lr"] /= 2
        grads = grads_for(params, step, dtype)
        opt.step(grads)
        for k, t in leaves.items():
            t.grad = torch.from_numpy(grads[k].copy())
        topt.step()
        check(f"optim.{name}", dtype, {k: (params[k], leaves[k].detach().numpy())
                                       for k in params})
    assert all(id(v) == ids[k] for k, v in params.items())  # updated in place
    assert all(v.dtype == dtype for v in params.values())


@pytest.mark.parametrize("ours, theirs", [(optim.SGD, "SGD"), (optim.RMSProp, "RMSprop"),
                                          (optim.AdaGrad, "Adagrad"), (optim.Adam, "Adam")])
def test_optimizer_defaults_are_torchs(torch, ours, theirs):
    import inspect
    mine = inspect.signature(ours).parameters
    torchs = inspect.signature(getattr(torch.optim, theirs)).parameters
    shared = [name for name in mine if name != "params" and name in torchs]
    assert "lr" in shared and "weight_decay" in shared
    for name in shared:
        assert mine[name].default == torchs[name].default, name


def test_optimizer_state_lives_with_the_params_and_steps_named_module_params():
    class Model:  # anything with a .params mapping
        params = make_params()
    opt = optim.Adam(Model, lr=0.1)
    opt.step(grads_for(Model.params, 0, np.float64))
    assert set(opt.state) == {"W1", "b1"}
    assert opt.state["W1"]["exp_avg"].shape == (3, 4) and opt.state["W1"]["step"] == 1
    assert isinstance(opt.state["b1"]["exp_avg_sq"], np.ndarray)


def test_optimizer_rejects_missing_or_misshapen_grads_and_bad_hyperparameters():
    params = make_params()
    opt = optim.SGD(params, lr=0.1)
    with pytest.raises(ValueError, match="'b1'"):
        opt.step({"W1": np.zeros((3, 4))})
    with pytest.raises(ValueError, match=r"grads\['W1'\] has shape \(4, 3\)"):
        opt.step({"W1": np.zeros((4, 3)), "b1": np.zeros(4)})
    with pytest.raises(ValueError, match="lr"):
        optim.Adam(params, lr=-1)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(params, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(params, nesterov=True)
    for flag in ("False", 1, None):  # "False" switched Nesterov momentum on
        with pytest.raises(TypeError, match="nesterov must be a bool"):
            optim.SGD(params, momentum=0.9, nesterov=flag)
    with pytest.raises(TypeError, match="mapping"):
        optim.SGD([np.zeros(3)])
    with pytest.raises(TypeError, match="lr must be a real number"):
        optim.SGD(params, lr="0.1")
    with pytest.raises(ValueError, match="betas must be a pair"):
        optim.Adam(params, betas=0.9)
    with pytest.raises(TypeError, match=r"grads\['b1'\] must be an array"):
        opt.step({"W1": np.zeros((3, 4)), "b1": None})


@pytest.mark.parametrize("lr, err", [(-0.1, ValueError), (np.ones(3), TypeError),
                                     ("0.1", TypeError), (None, TypeError)])
def test_a_learning_rate_changed_after_construction_is_checked_before_the_step(lr, err):
    """A negative lr ascended; an lr of W1's length updated W1, then failed on b1."""
    params = {"W1": np.ones(3), "b1": np.ones(2)}
    opt = optim.SGD(params, lr=0.1)
    opt.lr = lr
    with pytest.raises(err, match="lr must be"):
        opt.step({"W1": np.ones(3), "b1": np.ones(2)})
    np.testing.assert_array_equal(params["W1"], np.ones(3))
    np.testing.assert_array_equal(params["b1"], np.ones(2))


def test_optimizer_refuses_a_scalar_parameter_it_could_not_update_in_place():
    """``s -= lr * g`` on a NumPy scalar rebinds a local name: the step would be lost."""
    with pytest.raises(TypeError, match=r"params\['s'\] must be an array"):
        optim.SGD({"s": np.float64(1.0)}, lr=0.1).step({"s": np.float64(1.0)})
    zero_d = {"s": np.array(1.0)}
    optim.SGD(zero_d, lr=0.1).step({"s": np.array(1.0)})
    assert zero_d["s"] == pytest.approx(0.9)


def snapshot(params, state):
    """Copies of ``params`` and of every array or number in ``state``, to compare after an error."""
    return ({k: v.copy() for k, v in params.items()},
            {name: {key: (value.copy() if isinstance(value, np.ndarray) else value)
                    for key, value in entries.items()} for name, entries in state.items()})


def assert_unchanged(params, state, saved):
    saved_params, saved_state = saved
    for k, v in params.items():
        np.testing.assert_array_equal(v, saved_params[k], err_msg=k)
    assert sorted(state) == sorted(saved_state)
    for name, entries in state.items():
        assert sorted(entries) == sorted(saved_state[name]), name
        for key, value in entries.items():
            np.testing.assert_array_equal(value, saved_state[name][key], err_msg=f"{name} {key}")


def good_grads():
    return {"a": np.full(3, 0.5), "b": np.full(2, -0.5)}


NOT_FLOAT = r"grads\['b'\] must be a floating-point array, got "
BAD_LAST_GRAD = [  # (the gradient of "b", the second parameter; the error; its message)
    (np.ones(3), ValueError, r"grads\['b'\] has shape \(3,\), params\['b'\] has shape \(2,\)"),
    (np.ones(2, complex), TypeError, NOT_FLOAT + "complex128"),
    (np.ones(2, object), TypeError, NOT_FLOAT + "object"),
    (np.ones(2, np.int64), TypeError, NOT_FLOAT + "int64"),
    ([1.0, 1.0], TypeError, r"grads\['b'\] must be an array, got list"),
    ("missing", ValueError, "grads has no entry for parameter 'b'"),
]
BAD_LAST_GRAD_IDS = ["shape", "complex", "object", "int", "list", "missing"]

OBJECTS = {"sgd": (optim.SGD, dict(lr=0.1, weight_decay=0.1)),
           "momentum": (optim.SGD, dict(lr=0.1, momentum=0.9)),
           "rmsprop": (optim.RMSProp, {}), "adagrad": (optim.AdaGrad, {}), "adam": (optim.Adam, {})}


@pytest.mark.parametrize("grad, error, message", BAD_LAST_GRAD, ids=BAD_LAST_GRAD_IDS)
@pytest.mark.parametrize("name", OBJECTS)
def test_optimizer_checks_every_gradient_before_it_changes_anything(name, grad, error, message):
    """A bad gradient for the second parameter was refused only after the first was updated
    (SGD left a at 0.9); complex and object gradients raised NumPy's UFuncTypeError."""
    cls, kwargs = OBJECTS[name]
    params = {"a": np.ones(3), "b": np.ones(2)}
    opt = cls(params, **kwargs)
    opt.step(good_grads())  # so that there is state to keep as well
    saved = snapshot(params, opt.state)
    grads = {"a": np.ones(3)} if isinstance(grad, str) else {"a": np.ones(3), "b": grad}
    with pytest.raises(error, match=message):
        opt.step(grads)
    assert_unchanged(params, opt.state, saved)


@pytest.mark.parametrize("grads", [[np.ones(3), np.ones(2)], None, np.ones(3)])
def test_optimizer_step_refuses_grads_that_are_no_mapping(grads):
    """A list raised "truth value of an array is ambiguous", None "argument of type
    'NoneType' is not iterable"."""
    params = {"a": np.ones(3), "b": np.ones(2)}
    for opt in (optim.SGD(params, lr=0.1), optim.RuleOptimizer(params, optim.sgd)):
        with pytest.raises(TypeError, match=r"grads must be a name -> array mapping .*got "
                                            + type(grads).__name__):
            opt.step(grads)
    np.testing.assert_array_equal(params["a"], 1.0)


def test_optimizer_checks_its_state_and_writeable_params_before_a_step():
    params = {"a": np.ones(3), "b": np.ones(2)}
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    opt.state["b"] = {"momentum_buffer": np.zeros((2, 2))}  # failed only at b, after a's step
    with pytest.raises(ValueError, match=r"state\['b'\]\['momentum_buffer'\] has shape \(2, 2\), "
                                         r"params\['b'\] has shape \(2,\)"):
        opt.step(good_grads())
    assert list(opt.state) == ["b"] and not opt.state["b"]["momentum_buffer"].any()
    adam = optim.Adam(params)
    adam.state["b"] = {"step": "3"}
    with pytest.raises(TypeError, match=r"state\['b'\]\['step'\] must be an int"):
        adam.step(good_grads())
    adam.state["b"] = {"exp_avg": np.zeros(2, np.int64)}
    with pytest.raises(TypeError, match=r"state\['b'\]\['exp_avg'\] must be a floating-point"):
        adam.step(good_grads())
    assert "a" not in adam.state
    params["b"].flags.writeable = False  # the step is in place: it would fail after a's
    with pytest.raises(ValueError, match=r"params\['b'\] is read-only"):
        optim.SGD(params, lr=0.1).step(good_grads())
    np.testing.assert_array_equal(params["a"], 1.0)


@pytest.mark.parametrize("rule", ["sgd", "sgd_momentum", "rmsprop", "adam"])
@pytest.mark.parametrize("grad, error, message", BAD_LAST_GRAD, ids=BAD_LAST_GRAD_IDS)
def test_rule_optimizer_checks_every_gradient_before_it_changes_anything(rule, grad, error,
                                                                         message):
    params = {"a": np.ones(3), "b": np.ones(2)}
    opt = optim.RuleOptimizer(params, getattr(optim, rule), {"learning_rate": 0.1})
    opt.step(good_grads())
    arrays = dict(params)
    saved = snapshot(params, opt.state)
    grads = {"a": np.ones(3)} if isinstance(grad, str) else {"a": np.ones(3), "b": grad}
    with pytest.raises(error, match=message):
        opt.step(grads)
    assert_unchanged(params, opt.state, saved)
    assert all(params[k] is arrays[k] for k in params)


@pytest.mark.parametrize("rule, key, bad", [("sgd_momentum", "velocity", np.zeros((3, 2))),
                                            ("rmsprop", "cache", np.zeros((1, 2))),
                                            ("adam", "m", np.zeros(1)), ("adam", "v", np.zeros(4))])
def test_rule_optimizer_checks_every_config_before_it_changes_anything(rule, key, bad):
    params = {"a": np.ones(3), "b": np.ones(2)}
    opt = optim.RuleOptimizer(params, getattr(optim, rule), {"learning_rate": 0.1})
    opt.step(good_grads())
    opt.state["b"][key] = bad
    saved = snapshot(params, opt.state)
    message = rf"state\['b'\]: {key} has shape {re.escape(str(bad.shape))}, w has shape \(2,\)"
    with pytest.raises(ValueError, match=message):
        opt.step(good_grads())
    assert_unchanged(params, opt.state, saved)


@pytest.mark.parametrize("ours, theirs, kwargs", [
    (optim.StepLR, "StepLR", dict(step_size=3, gamma=0.5)),
    (optim.ExponentialLR, "ExponentialLR", dict(gamma=0.9)),
])
def test_schedules_match_torch(torch, ours, theirs, kwargs):
    opt = optim.SGD(make_params(), lr=0.2)
    sched = ours(opt, **kwargs)
    t = torch.nn.Parameter(torch.zeros(1))
    topt = torch.optim.SGD([t], lr=0.2)
    tsched = getattr(torch.optim.lr_scheduler, theirs)(topt, **kwargs)
    for _ in range(8):
        topt.step()
        tsched.step()
        assert sched.step() == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
        assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)


# -- the CS231n update rules, against the check values printed in the course's
#    assignment-2 notebook (FullyConnectedNets.ipynb), which its solutions reproduce
N, D = 4, 5
W = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)
DW = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)
COURSE = {
    "sgd_momentum": (
        {"learning_rate": 1e-3, "velocity": np.linspace(0.6, 0.9, num=N * D).reshape(N, D)},
        [[0.1406, 0.20738947, 0.27417895, 0.34096842, 0.40775789],
         [0.47454737, 0.54133684, 0.60812632, 0.67491579, 0.74170526],
         [0.80849474, 0.87528421, 0.94207368, 1.00886316, 1.07565263],
         [1.14244211, 1.20923158, 1.27602105, 1.34281053, 1.4096]],
        {"velocity": [[0.5406, 0.55475789, 0.56891579, 0.58307368, 0.59723158],
                      [0.61138947, 0.62554737, 0.63970526, 0.65386316, 0.66802105],
                      [0.68217895, 0.69633684, 0.71049474, 0.72465263, 0.73881053],
                      [0.75296842, 0.76712632, 0.78128421, 0.79544211, 0.8096]]}),
    "rmsprop": (
        {"learning_rate": 1e-2, "cache": np.linspace(0.6, 0.9, num=N * D).reshape(N, D)},
        [[-0.39223849, -0.34037513, -0.28849239, -0.23659121, -0.18467247],
         [-0.132737, -0.08078555, -0.02881884, 0.02316247, 0.07515774],
         [0.12716641, 0.17918792, 0.23122175, 0.28326742, 0.33532447],
         [0.38739248, 0.43947102, 0.49155973, 0.54365823, 0.59576619]],
        {"cache": [[0.5976, 0.6126277, 0.6277108, 0.64284931, 0.65804321],
                   [0.67329252, 0.68859723, 0.70395734, 0.71937285, 0.73484377],
                   [0.75037008, 0.7659518, 0.78158892, 0.79728144, 0.81302936],
                   [0.82883269, 0.84469141, 0.86060554, 0.87657507, 0.8926]]}),
    "adam": (
        {"learning_rate": 1e-2, "m": np.linspace(0.6, 0.9, num=N * D).reshape(N, D),
         "v": np.linspace(0.7, 0.5, num=N * D).reshape(N, D), "t": 5},
        [[-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
         [-0.1380274, -0.08544591, -0.03286534, 0.01971428, 0.0722929],
         [0.1248705, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
         [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459]],
        {"v": [[0.69966, 0.68908382, 0.67851319, 0.66794809, 0.65738853],
               [0.64683452, 0.63628604, 0.6257431, 0.61520571, 0.60467385],
               [0.59414753, 0.58362676, 0.57311152, 0.56260183, 0.55209767],
               [0.54159906, 0.53110598, 0.52061845, 0.51013645, 0.49966]],
         "m": [[0.48, 0.49947368, 0.51894737, 0.53842105, 0.55789474],
               [0.57736842, 0.59684211, 0.61631579, 0.63578947, 0.65526316],
               [0.67473684, 0.69421053, 0.71368421, 0.73315789, 0.75263158],
               [0.77210526, 0.79157895, 0.81105263, 0.83052632, 0.85]]}),
}


def course_rel_error(x, y):
    """The course notebook's rel_error."""
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))


@pytest.mark.parametrize("rule", COURSE)
def test_course_update_rules_match_the_notebook(rule):
    config, expected_w, expected_state = COURSE[rule]
    config = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in config.items()}
    next_w, out_config = getattr(optim, rule)(W.copy(), DW, config=config)
    assert out_config is config
    # The notebook prints its values to 8 decimals and asks for errors "around e-7 or less":
    # rounding alone gives 1.1e-7 on adam's entry 0.01971428 (correct solutions print that).
    assert course_rel_error(next_w, np.array(expected_w)) < 2e-7
    for key, value in expected_state.items():
        assert course_rel_error(config[key], np.array(value)) < 2e-7, key
    if rule == "adam":
        assert config["t"] == 6


def test_course_rules_defaults_and_state_creation():
    w = W.copy()
    next_w, config = optim.sgd(w, DW)
    assert next_w is w and config == {"learning_rate": 1e-2}  # in place, as the course
    np.testing.assert_allclose(next_w, W - 1e-2 * DW, rtol=1e-15)
    _, config = optim.sgd_momentum(W, DW)
    assert config["momentum"] == 0.9 and config["velocity"].shape == W.shape
    _, config = optim.rmsprop(W, DW)
    assert (config["decay_rate"], config["epsilon"]) == (0.99, 1e-8)
    _, config = optim.adam(W, DW)
    assert (config["learning_rate"], config["beta1"], config["beta2"], config["t"]) == \
        (1e-3, 0.9, 0.999, 1)


@pytest.mark.parametrize("rule", ["sgd", "sgd_momentum", "rmsprop", "adam"])
def test_course_rules_keep_float32_weights_float32(rule):
    """Settings from NumPy (np.float64 scalars, e.g. from np.logspace) and a float64 dw
    must not promote a float32 w: float32 layers refuse float64 parameters."""
    w32, dw64 = W.astype(np.float32), DW
    next_w, config = getattr(optim, rule)(w32.copy(), dw64, {"learning_rate": np.float64(1e-2)})
    assert next_w.dtype == np.float32
    expected, _ = getattr(optim, rule)(W.copy(), DW, {"learning_rate": 1e-2})
    np.testing.assert_allclose(next_w, expected, rtol=1e-5, atol=1e-7)
    next_w, _ = getattr(optim, rule)(next_w, dw64.astype(np.float32), config)
    assert next_w.dtype == np.float32


@pytest.mark.parametrize("rule", ["sgd", "sgd_momentum", "rmsprop", "adam"])
def test_course_rules_refuse_a_misshapen_dw_or_bad_settings(rule):
    update = getattr(optim, rule)
    with pytest.raises(ValueError, match=r"dw has shape \(5,\), w has shape \(4, 5\)"):
        update(W.copy(), DW[0])  # would broadcast into a (4, 5) step
    with pytest.raises(ValueError, match="learning_rate must be >= 0"):
        update(W.copy(), DW, {"learning_rate": -1.0})
    with pytest.raises(TypeError, match="dw must be an array"):
        update(W.copy(), DW.tolist())


@pytest.mark.parametrize("rule, key", [("sgd_momentum", "velocity"), ("rmsprop", "cache"),
                                       ("adam", "m"), ("adam", "v")])
def test_course_rules_check_their_state_against_w_before_any_update(rule, key):
    """A (2, 3) velocity for a (3,) w broadcast into a (2, 3) next_w; so did rmsprop's cache
    and adam's m and v (the last after m had been updated in place)."""
    update = getattr(optim, rule)
    w, dw = np.ones(3), np.full(3, 0.5)
    for bad, error, message in [
            (np.zeros((2, 3)), ValueError, rf"{key} has shape \(2, 3\), w has shape \(3,\)"),
            (np.zeros(1), ValueError, rf"{key} has shape \(1,\), w has shape \(3,\)"),
            (np.zeros(3, np.int64), TypeError, f"{key} must be a floating-point array"),
            (np.zeros(3, complex), TypeError, f"{key} must be a floating-point array"),
            ([0.0, 0.0, 0.0], TypeError, f"{key} must be an array shaped like w")]:
        config = {key: bad, "learning_rate": 0.1}
        saved = snapshot({"w": w}, {"config": config})
        with pytest.raises(error, match=message):
            update(w, dw, config)
        assert_unchanged({"w": w}, {"config": config}, saved)  # no defaults filled in either
    if key != "velocity":  # updated in place: a read-only one would fail part-way
        frozen = np.zeros(3)
        frozen.flags.writeable = False
        with pytest.raises(ValueError, match=f"{key} is read-only"):
            update(w, dw, {key: frozen})
    assert update(w, dw, {key: None})[1][key].shape == (3,)  # None: created, as before


def test_course_rules_check_config_dw_and_adams_t_before_any_update():
    w, dw = np.ones(3), np.full(3, 0.5)
    for bad_t, error, message in [("a", TypeError, "t must be an int, got 'a'"),
                                  (1.5, TypeError, "t must be an int"),
                                  (-1, ValueError, "t must be >= 0, got -1")]:
        config = {"t": bad_t, "m": np.zeros(3)}
        with pytest.raises(error, match=message):
            optim.adam(w, dw, config)
        assert config["t"] == bad_t and not config["m"].any() and len(config) == 2
    w32, config = optim.adam(w.astype(np.float32), dw, {"t": np.int64(4)})
    assert config["t"] == 5 and type(config["t"]) is int and w32.dtype == np.float32
    for rule in ("sgd", "sgd_momentum", "rmsprop", "adam"):
        update = getattr(optim, rule)
        for config in ([0.1], "config", 0.1):
            with pytest.raises(TypeError, match=r"config must be a dict \(or None\), got "
                                                + type(config).__name__):
                update(w.copy(), dw, config)
        for bad_dw in (np.ones(3, complex), np.ones(3, object), np.ones(3, np.int64)):
            with pytest.raises(TypeError, match="dw must be a floating-point array, got "
                                                + str(bad_dw.dtype)):
                update(w.copy(), bad_dw)  # complex was cast, losing its imaginary part
    frozen = np.ones(3)
    frozen.flags.writeable = False  # sgd alone updates w in place
    with pytest.raises(ValueError, match="w is read-only"):
        optim.sgd(frozen, dw)
    assert optim.sgd_momentum(frozen, dw)[0].shape == (3,)


def test_course_rules_keep_ws_dtype_with_float64_state():
    """State from a float64 run must not promote a float32 w (float32 layers refuse float64)."""
    w32, dw = np.ones(3, np.float32), np.full(3, 0.5, np.float32)
    for rule, key in [("sgd_momentum", "velocity"), ("rmsprop", "cache"), ("adam", "m")]:
        next_w, _ = getattr(optim, rule)(w32.copy(), dw, {key: np.full(3, 0.25)})
        expected, _ = getattr(optim, rule)(w32.astype(np.float64), dw.astype(np.float64),
                                            {key: np.full(3, 0.25)})
        assert next_w.dtype == np.float32, rule
        np.testing.assert_allclose(next_w, expected, rtol=1e-6)


def test_course_rules_match_torch_over_several_steps(torch):
    """With a constant learning rate the course rules equal torch.optim's."""
    cases = [("sgd_momentum", {"learning_rate": 0.05, "momentum": 0.9}, "SGD",
              dict(lr=0.05, momentum=0.9)),
             ("rmsprop", {"learning_rate": 0.01}, "RMSprop", dict(lr=0.01, alpha=0.99, eps=1e-8)),
             ("adam", {"learning_rate": 0.01}, "Adam", dict(lr=0.01))]
    for rule, config, torch_name, kwargs in cases:
        w = W.copy()
        t = torch.from_numpy(W.copy()).requires_grad_(True)
        topt = getattr(torch.optim, torch_name)([t], **kwargs)
        for step in range(STEPS):
            g = grads_for({"w": W}, step, np.float64)["w"]
            w, config = getattr(optim, rule)(w, g, config)
            t.grad = torch.from_numpy(g.copy())
            topt.step()
            check(f"optim.{rule} (course)", np.float64, {"w": (w, t.detach().numpy())})


@pytest.mark.parametrize("rule", ["sgd", "sgd_momentum", "rmsprop", "adam"])
def test_rule_optimizer_applies_the_course_rule_to_every_parameter(rule):
    """RuleOptimizer.step is the course rule by hand, one config per parameter; lr sets them all."""
    update = getattr(optim, rule)
    params = make_params()
    by_hand = {k: v.copy() for k, v in params.items()}
    configs = {k: {"learning_rate": 0.05} for k in params}
    opt = optim.RuleOptimizer(params, update, {"learning_rate": 0.05})
    assert opt.lr == 0.05 and opt.state == configs
    for step in range(STEPS):
        if step == 3:  # as the Solver's lr_decay does between epochs
            opt.lr *= 0.5
            for config in configs.values():
                config["learning_rate"] *= 0.5
        grads = grads_for(params, step, np.float64)
        opt.step(grads)
        for k in by_hand:
            by_hand[k], configs[k] = update(by_hand[k], grads[k], configs[k])
            np.testing.assert_array_equal(params[k], by_hand[k], err_msg=f"{k} step {step}")
    assert opt.lr == 0.025 and sorted(opt.state) == ["W1", "b1"]
    for k, config in configs.items():
        assert opt.state[k] is not configs[k] and sorted(opt.state[k]) == sorted(config)
        for key, value in config.items():
            np.testing.assert_array_equal(opt.state[k][key], value, err_msg=f"{k} {key}")


def test_rule_optimizer_leaves_the_rules_defaults_and_names_bad_arguments():
    params = make_params()
    opt = optim.RuleOptimizer(params, optim.adam)
    assert opt.lr is None  # the rule's own default, set on its first call
    opt.step(grads_for(params, 0, np.float64))
    assert opt.lr == 1e-3 and opt.state["W1"]["t"] == 1
    with pytest.raises(ValueError, match="grads has no entry for parameter 'b1'"):
        opt.step({"W1": np.zeros((3, 4))})
    with pytest.raises(TypeError, match="rule must be callable"):
        optim.RuleOptimizer(params, "adam")
    with pytest.raises(TypeError, match="mapping"):
        optim.RuleOptimizer([np.zeros(3)], optim.sgd)


def test_step_lr_checks_its_step_size():
    opt = optim.SGD(make_params(), lr=0.1)
    with pytest.raises(ValueError, match="step_size must be >= 1, got 0"):
        optim.StepLR(opt, step_size=0)
    with pytest.raises(TypeError, match="step_size must be an int"):
        optim.StepLR(opt, step_size=2.0)
    assert optim.StepLR(opt, step_size=np.int64(2)).step_size == 2


@pytest.mark.parametrize("schedule, kwargs, first", [(optim.StepLR, dict(step_size=2), 0.2),
                                                     (optim.ExponentialLR, dict(gamma=0.5), 0.1)])
def test_schedules_refuse_an_optimizer_without_a_learning_rate_when_built(schedule, kwargs, first):
    """A RuleOptimizer has lr None until a step sets learning_rate: the first epoch's end
    failed with None * factor."""
    with pytest.raises(TypeError, match=r"optimizer.lr \(the base learning rate\) must be"):
        schedule(optim.RuleOptimizer(make_params(), optim.adam), **kwargs)
    with pytest.raises(TypeError, match="optimizer must have a settable lr"):
        schedule(make_params(), **kwargs)
    opt = optim.RuleOptimizer(make_params(), optim.adam, {"learning_rate": 0.2})
    assert schedule(opt, **kwargs).step() == pytest.approx(first)
    assert opt.lr == pytest.approx(first)


@pytest.mark.gpu
def test_optimizer_state_is_allocated_on_the_parameters_device():
    import cupy
    cpu = make_params()
    gpu = {k: cupy.asarray(v) for k, v in cpu.items()}
    ours, theirs = optim.Adam(gpu, lr=0.01), optim.Adam(cpu, lr=0.01)
    for step in range(3):
        grads = grads_for(cpu, step, np.float64)
        theirs.step(grads)
        ours.step({k: cupy.asarray(v) for k, v in grads.items()})
    assert isinstance(ours.state["W1"]["exp_avg"], cupy.ndarray)
    for k in cpu:
        np.testing.assert_allclose(gpu[k].get(), cpu[k], rtol=1e-12)
    w, config = optim.rmsprop(cupy.asarray(W), cupy.asarray(DW))
    assert isinstance(config["cache"], cupy.ndarray) and isinstance(w, cupy.ndarray)


def test_course_rules_take_a_0d_parameters_state_as_a_number_and_update_it():
    """A checkpoint gives 0-d entries back as numbers: for a 0-d w the rules take them, as
    0-d arrays of w's dtype updated like any state, against the same step from arrays."""
    for rule, state in ((optim.sgd_momentum, {"velocity": 0.1}), (optim.rmsprop, {"cache": 0.2}),
                        (optim.adam, {"m": 0.1, "v": 0.2, "t": 3})):
        as_arrays = {k: v if k == "t" else np.array(v) for k, v in state.items()}
        want_w, want = rule(np.array(1.0), np.array(0.5), as_arrays)
        got_w, got = rule(np.array(1.0), np.array(0.5), dict(state))
        assert got_w == want_w
        for key in state:
            assert got[key] == want[key] and got[key] != state[key], key


def test_course_rules_step_a_0d_parameter_again_and_again():
    """A 0-d w's arithmetic gives NumPy scalars: each rule's next_w must still be an array
    the next step takes, with the values of the same steps on a 1-element w."""
    for rule in (optim.sgd, optim.sgd_momentum, optim.rmsprop, optim.adam):
        w, config, w1, config1 = np.array(1.0), None, np.array([1.0]), None
        for _ in range(3):
            w, config = rule(w, np.array(0.5), config)
            w1, config1 = rule(w1, np.array([0.5]), config1)
        assert isinstance(w, np.ndarray) and w.shape == () and w == w1[0], rule.__name__
