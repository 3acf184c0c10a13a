"""Jobs that tests/test_distributed.py runs on several ranks with mpiexec.

Usage: mpiexec -n N python [-m mpi4py] tests/mpi_worker.py JOB OUT_DIR [options]
Each rank writes what it computed to OUT_DIR/<job>-rank<r>.npz; the test
compares it with an oracle computed in the test process.
"""

import argparse
import os

import numpy as np

from fastconv import distributed

SAMPLE_WEIGHTS = (3, 1, 2, 5)  # per-rank weights of the weighted mean (rank r uses [r])


def collectives(comm, out, args):
    """broadcast_, allreduce_mean_ (two dtypes, a zero weight), average_metrics, a layout mismatch."""
    r = comm.rank
    params = {"w": np.random.default_rng(r).normal(size=(3, 4)),
              "b": np.random.default_rng(10 + r).normal(size=5).astype(np.float32)}
    comm.broadcast_(params)
    grads = [np.random.default_rng(100 + r).normal(size=(2, 3)),
             np.random.default_rng(200 + r).normal(size=7).astype(np.float32)]
    total = comm.allreduce_mean_(grads, weight=SAMPLE_WEIGHTS[r])
    zero_weight = [np.full(4, float(r + 1))]
    comm.allreduce_mean_(zero_weight, weight=0 if r == 0 else 2)
    metrics = comm.average_metrics({"loss": r + 1.0, "acc": 0.25 * r}, SAMPLE_WEIGHTS[r])
    try:
        comm.broadcast_([np.zeros(3 + r)])
        mismatch = ""
    except ValueError as exc:
        mismatch = str(exc)
    comm.barrier()
    np.savez(out, w=params["w"], b=params["b"], g0=grads[0], g1=grads[1], total=total,
             zero_weight=zero_weight[0], loss=metrics["loss"], acc=metrics["acc"],
             mismatch=mismatch, world_size=comm.world_size)


def fail(comm, out, args):
    """Rank 1 raises while the others wait in a collective: the job must abort, not hang."""
    comm.barrier()
    if comm.rank == 1:
        raise RuntimeError("rank 1 failed on purpose")
    comm.allreduce_sum({"never": 1.0})


JOBS = {"collectives": collectives, "fail": fail}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("job", choices=sorted(JOBS))
    parser.add_argument("out_dir")
    args, rest = parser.parse_known_args()
    comm = distributed.init(device="cpu")
    out = os.path.join(args.out_dir, f"{args.job}-rank{comm.rank}.npz")
    JOBS[args.job](comm, out, rest)


if __name__ == "__main__":
    main()
