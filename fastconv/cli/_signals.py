"""Stop signals of ``fastconv train``: SIGINT, SIGTERM and SIGHUP end training as Ctrl-C does.

Training stops where the signal finds it (the last checkpoint on disk stays
complete: it is written atomically), the history is marked interrupted, and
the command exits with the conventional status, 128 + the signal's number
(130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
"""

import contextlib
import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """Training stopped by the stop signal ``signum``.

    A KeyboardInterrupt, so the Solver's Ctrl-C handling (mark itself
    interrupted, close the progress bar, re-raise) applies to every stop signal.

    Parameters
    ----------
    signum : int
        The signal's number.
    """

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(interrupt):
    """128 + the number of the signal behind ``interrupt`` (SIGINT for a KeyboardInterrupt)."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


def describe(interrupt):
    """``'interrupted'`` for Ctrl-C, else e.g. ``'interrupted by SIGTERM'``."""
    signum = getattr(interrupt, "signum", signal.SIGINT)
    if signum == signal.SIGINT:
        return "interrupted"
    return f"interrupted by {signal.Signals(signum).name}"


def _raise_interrupted(signum, frame):
    # The handling that follows (history marked interrupted, the message) must run to its end:
    # a second Ctrl-C would cut it short, ending the command with status -2.
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_signals(acting=True):
    """Within the block, the first stop signal raises :class:`Interrupted`; later ones are ignored.

    Parameters
    ----------
    acting : bool, default True
        False on the ranks other than 0 of a data-parallel job: they ignore stop
        signals. Rank 0 stops, writes the history and exits, and its exit aborts
        the job (``python -m mpi4py``, as ``--nproc`` runs it, aborts on a
        non-zero exit; without it the collective timeout ends the others). A
        rank that stopped on its own could end the job while rank 0 is still
        writing, and ranks that stop at different steps would leave one waiting
        in a collective.
    """
    from ..distributed.launcher import signal_handlers
    handler = _raise_interrupted if acting else signal.SIG_IGN
    with signal_handlers({signum: handler for signum in STOP_SIGNALS}):
        yield
