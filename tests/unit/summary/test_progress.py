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
    assert line(10, 1000, 1.0, width=10).endswith("ETA 1m39s")  # 990 left at 10/s
    assert line(7, 0, 1.0, width=4) == "[####] 7/0 samples  7.0/s  ETA 0s"


def test_monitor_logs_a_final_line_when_not_a_terminal(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="pipeline"):
        with Monitor(str(tmp_path), total=4, stream=io.StringIO()):
            Ticker(str(tmp_path)).tick(4)
    assert any("progress [" in r.message and "4/4 samples" in r.message for r in caplog.records)
