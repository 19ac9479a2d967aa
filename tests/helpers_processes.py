"""Test helpers for tests that drive a real process."""
import signal


def ctrl_c_as_in_a_terminal() -> None:
    """``preexec_fn`` for a child that is sent a real SIGINT: SIGINT's default action, as a terminal gives it.

    A test run started in the background by a shell without job control (``cmd &``, nohup) ignores SIGINT, its
    children inherit that, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
