"""Jobs that tests/test_distributed.py runs on several ranks with mpiexec.

Usage: mpiexec -n N python [-m mpi4py] tests/mpi_worker.py JOB OUT_DIR [--device cpu|gpu]
       [--gpu-transport auto|nccl|staged] [job options]
Each rank writes what it computed to OUT_DIR/<job>-rank<r>.npz; the test
compares it with an oracle computed in the test process.
"""

import argparse
import os
import signal

import numpy as np

from fastconv import distributed
from fastconv.backend import as_numpy, to_device

SAMPLE_WEIGHTS = (3, 1, 2, 5)  # per-rank weights of the weighted mean (rank r uses [r])


def collectives(comm, out, args):
    """broadcast_, allreduce_mean_ (3 dtypes, a zero weight), average_metrics, a layout mismatch."""
    r = comm.rank

    def here(a):  # on this job's device: NumPy (MPI) or CuPy (NCCL or staged)
        return to_device(a, comm.device)

    params = {"w": here(np.random.default_rng(r).normal(size=(3, 4))),
              "b": here(np.random.default_rng(10 + r).normal(size=5).astype(np.float32))}
    comm.broadcast_(params)
    grads = [here(np.random.default_rng(100 + r).normal(size=(2, 3))),
             here(np.random.default_rng(200 + r).normal(size=7).astype(np.float32)),
             here(np.random.default_rng(300 + r).normal(size=5).astype(np.float16))]
    total = comm.allreduce_mean_(grads, weight=SAMPLE_WEIGHTS[r])
    zero_weight = [here(np.full(4, float(r + 1)))]
    comm.allreduce_mean_(zero_weight, weight=0 if r == 0 else 2)
    metrics = comm.average_metrics({"loss": r + 1.0, "acc": 0.25 * r}, SAMPLE_WEIGHTS[r])
    try:
        comm.broadcast_([here(np.zeros(3 + r))])
        mismatch = ""
    except ValueError as exc:
        mismatch = str(exc)
    comm.barrier()
    np.savez(out, w=as_numpy(params["w"]), b=as_numpy(params["b"]), g0=as_numpy(grads[0]),
             g1=as_numpy(grads[1]), g2=as_numpy(grads[2]), total=total,
             zero_weight=as_numpy(zero_weight[0]),
             loss=metrics["loss"], acc=metrics["acc"], mismatch=mismatch,
             world_size=comm.world_size, transport=comm.describe())


def fail(comm, out, args):
    """Rank 1 raises while the others wait in a collective: the job must abort, not hang.

    Rank 1 first leaves a marker file, the test's evidence that it reached the raise.
    """
    comm.barrier()
    if comm.rank == 1:
        with open(out + ".raised", "w") as marker:
            marker.write("rank 1 failed on purpose\n")
        raise RuntimeError("rank 1 failed on purpose")
    comm.allreduce_sum({"never": 1.0})


def problem(batchnorm, num_samples, features=6, classes=3, seed=0, device="cpu", num_val=20):
    """The float64 model and data every equivalence run starts from (same on every rank)."""
    from fastconv.nn.models import mlp
    rng = np.random.default_rng(1234)
    X = rng.normal(size=(num_samples + 20, features))
    y = rng.integers(0, classes, size=num_samples + 20)
    data = {"X_train": X[:num_samples], "y_train": y[:num_samples],
            "X_val": X[num_samples:num_samples + num_val],
            "y_val": y[num_samples:num_samples + num_val]}
    model = mlp(features, classes, hidden_dims=(8, 7), batchnorm=batchnorm, reg=0.01,
                dtype=np.float64, device=device, seed=seed)
    return model, data


def build_solver(batchnorm, num_samples, batch_size, epochs, model_seed=0, solver_class=None,
                 device="cpu", num_val=20, **options):
    """The Solver of every equivalence run (data-parallel when ``parallel=`` says so)."""
    from fastconv.train import Solver
    model, data = problem(batchnorm, num_samples, seed=model_seed, device=device,
                          num_val=num_val)
    return (solver_class or Solver)(model, data, update_rule="sgd_momentum",
                  optim_config={"learning_rate": 0.05, "momentum": 0.9},
                  batch_size=batch_size, num_epochs=epochs, num_train_samples=None,
                  seed=5, progress=False, verbose=False, **options)


def train(comm, out, args):
    """Train with parallel=DataParallel(); save every rank's final state."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--batchnorm", action="store_true")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=49)
    parser.add_argument("--resume")
    parser.add_argument("--checkpoint")
    opts = parser.parse_args(args)
    # Each rank seeds its model differently: the broadcast from rank 0 must fix that.
    solver = build_solver(opts.batchnorm, opts.samples, opts.batch_size, opts.epochs,
                          model_seed=comm.rank, device=comm.device, checkpoint_name=opts.checkpoint,
                          resume=opts.resume, parallel=distributed.DataParallel())
    solver.train()
    np.savez(out, kind=type(solver).__name__, strategy=type(solver.parallel).__name__,
             loss=np.array(solver.loss_history),
             val_acc=np.array(solver.val_acc_history), train_acc=np.array(solver.train_acc_history),
             **{f"final/{k}": v for k, v in solver.model.state_dict().items()})


# What the ranks of the disagree job differ in, rank r's value of it.
DISAGREEMENTS = {
    "num_epochs": lambda r: dict(epochs=1 + r),
    "validation samples": lambda r: dict(num_val=20 - r),  # accuracy over two different sets
    "num_val_samples": lambda r: dict(num_val_samples=5 + r),
}


def disagree(comm, out, args):
    """Ranks built with a different setting (args[0], of DISAGREEMENTS; default num_epochs):
    every rank must refuse, naming it (no hang).

    Each rank leaves the error it got in a marker file, the test's evidence.
    """
    options = {"epochs": 1, **DISAGREEMENTS[args[0] if args else "num_epochs"](comm.rank)}
    try:
        build_solver(False, 24, 4, parallel=distributed.DataParallel(), **options)
    except ValueError as exc:
        with open(out + ".error", "w") as marker:
            marker.write(str(exc))
        raise


def hooks(comm, out, args):
    """A subclass's reduce_gradients runs on the averaged gradients, whether it calls super
    (here: it zeroes them, so nothing trains) or not (here: it keeps the first step's), and
    seeded Dropout layers draw a different mask on each rank."""
    from fastconv.nn import Dropout
    from fastconv.nn.models import mlp
    from fastconv.train import Solver

    class Frozen(Solver):
        def reduce_gradients(self, grads, batch_size):
            grads = super().reduce_gradients(grads, batch_size)
            return {k: 0 * g for k, g in grads.items()}

    class Peeking(Solver):
        first = None

        def reduce_gradients(self, grads, batch_size):
            if self.first is None:
                self.first = {k: as_numpy(g).copy() for k, g in grads.items()}
            return grads

    solver = build_solver(False, 24, 4, 1, solver_class=Frozen, parallel=distributed.DataParallel())
    start = solver.model.state_dict()
    solver.train()
    moved = max(float(np.abs(v - start[k]).max()) for k, v in solver.model.state_dict().items())
    peeking = build_solver(False, 24, 4, 1, solver_class=Peeking,
                           parallel=distributed.DataParallel()).train()
    _, data = problem(False, 24)
    model = mlp(6, 3, hidden_dims=(8,), dropout=0.5, dtype=np.float64, seed=0)
    Solver(model, data, progress=False, verbose=False,
           parallel=distributed.DataParallel())  # reseeds the dropout with the rank
    dropout = next(m for m in model.modules() if isinstance(m, Dropout))
    mask = dropout.forward(np.ones((8, 16))) != 0
    np.savez(out, kind=type(solver).__name__, strategy=type(solver.parallel).__name__,
             moved=moved, mask=mask, first_loss=peeking.loss_history[0],
             **{f"first/{k}": v for k, v in peeking.first.items()})


def stall(comm, out, args):
    """Rank 1 stops itself (SIGSTOP) before its third step while rank 0 goes on to the
    all-reduce: with a collective timeout (FASTCONV_COLLECTIVE_TIMEOUT) rank 0 must abort
    the job instead of waiting forever.

    Each rank's stderr goes to OUT.stderr, the test's evidence: the launcher may tear the job
    down before it forwards what a rank wrote.
    """
    from fastconv.train import Solver
    os.dup2(os.open(out + ".stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)

    class Stopping(Solver):
        def step(self, X_batch, y_batch):
            if comm.rank == 1 and len(self.loss_history) == 2:
                os.kill(os.getpid(), signal.SIGSTOP)
            return super().step(X_batch, y_batch)

    build_solver(False, 24, 4, 2, solver_class=Stopping,
                 parallel=distributed.DataParallel()).train()


JOBS = {"collectives": collectives, "fail": fail, "train": train, "disagree": disagree,
        "hooks": hooks, "stall": stall}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("job", choices=sorted(JOBS))
    parser.add_argument("out_dir")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--gpu-transport", choices=distributed.GPU_TRANSPORTS, default="auto")
    args, rest = parser.parse_known_args()
    comm = distributed.init(device=args.device, gpu_transport=args.gpu_transport)
    out = os.path.join(args.out_dir, f"{args.job}-rank{comm.rank}.npz")
    JOBS[args.job](comm, out, rest)


if __name__ == "__main__":
    main()
