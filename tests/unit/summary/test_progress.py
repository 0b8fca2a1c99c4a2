"""Local progress: workers tick one byte per sample, the launcher sums and prints."""

import io
import logging
import pickle

from transforms.summary.progress import Monitor, Ticker, count, line


def test_tickers_in_several_workers_add_up(tmp_path):
    tickers = [pickle.loads(pickle.dumps(Ticker(str(tmp_path)))) for _ in range(3)]  # as shipped
    for k, t in enumerate(tickers):
        t.tick(k + 1)
        t.tick()
    assert count(str(tmp_path)) == (1 + 2 + 3) + 3
    for t in tickers:
        t.close()
    Ticker(None).tick()  # no folder (Dataflow): a no-op
    assert count(str(tmp_path)) == 9


def test_line_shows_bar_counts_rate_and_eta():
    assert line(25, 100, 5.0, width=10) == "[##........] 25/100 samples  5.0/s  ETA 15s"
    assert line(20, 1000, 2.0, width=10).endswith("ETA 1m38s")  # 980 left at 10/s
    assert line(7, 0, 7.0, width=4) == "[####] 7/0 samples  1.0/s  ETA 0s"


def test_no_rate_or_eta_until_there_is_one():
    """Honest from the first tick: workers starting up are not a rate of 0/s."""
    assert line(0, 100, None, width=10) == "[..........] 0/100 samples  starting"
    assert line(3, 100, 1.5, width=10) == "[..........] 3/100 samples"  # too early to tell


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_bar_is_erased_when_done_and_never_glued_to_a_message(tmp_path):
    from transforms.summary.progress import BarAwareHandler

    term = _Terminal()
    logger = logging.getLogger("test-progress")
    handler = BarAwareHandler(term)
    logger.addHandler(handler)
    try:
        with Monitor(str(tmp_path), total=4, stream=term) as monitor:
            monitor._text = "[##..] 2/4 samples"  # as if drawn
            monitor.redraw()
            logger.warning("a message")
        text = term.getvalue()
    finally:
        logger.removeHandler(handler)
    # The message starts on an erased line and ends with a newline; the bar comes back
    # after it, and is erased when the monitor ends.
    assert "\r\033[Ka message\n\r[##..] 2/4 samples" in text
    assert text.endswith("\r\033[K")


def test_progress_lines_logged_through_the_bar_aware_handler_do_not_deadlock(tmp_path):
    """Not on a terminal, the monitor logs a progress line; the handler that erases the bar
    takes the same lock the monitor draws under (a run of more than 10 s used to hang)."""
    import threading

    from transforms.summary.progress import BarAwareHandler

    logged = threading.Event()

    class Handler(BarAwareHandler):
        def emit(self, record):
            super().emit(record)
            logged.set()

    stream = io.StringIO()
    handler = Handler(stream)
    logger = logging.getLogger("pipeline")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        monitor = Monitor(str(tmp_path), total=4, stream=io.StringIO(), log_every=0.0)
        monitor.__enter__()
        assert logged.wait(30), "no progress line was logged"
        done = threading.Thread(target=monitor.__exit__, args=(None, None, None))
        done.start()
        done.join(30)
        assert not done.is_alive(), "the monitor did not stop: deadlocked"
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert "progress [" in stream.getvalue()
