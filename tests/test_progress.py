"""The progress reporter every long step uses: log lines off a terminal, a tqdm bar on one."""

import logging

from teran_core.progress import Progress


def test_log_lines_come_at_the_interval_and_at_the_end_with_the_count_rate_and_time_left(caplog, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("teran_core.progress.time.monotonic", lambda: clock[0])
    caplog.set_level(logging.INFO, logger="teran.test")
    progress = Progress(logging.getLogger("teran.test"), "encode", total=10, unit="shards", interval_s=20, bar=False)
    for second in range(1, 10):  # one shard a second: no line before 20 s have passed
        clock[0] += 1
        progress.update(1, note=f"{second * 100} items")
    assert caplog.messages == []
    clock[0] += 15  # a wait with nothing finished still reports once the interval has passed
    progress.update(0)
    clock[0] += 1
    progress.update(1, note="1000 items")  # the last shard: reported at once
    progress.close()  # the last line already showed the final state
    assert caplog.messages == [
        "encode: 9/10 shards done [00:24 elapsed, 00:02 left,  2.67s/ shards]; 900 items",
        "encode: 10/10 shards done [00:25 elapsed, 00:00 left,  2.50s/ shards]; 1000 items",
    ]


def test_a_step_that_stops_short_says_so_when_closed(caplog):
    caplog.set_level(logging.INFO, logger="teran.test")
    progress = Progress(logging.getLogger("teran.test"), "synth", total=4, unit="shards", interval_s=60, bar=False)
    progress.update(3)
    progress.close()
    assert len(caplog.messages) == 1 and caplog.messages[0].startswith("synth: 3/4 shards done [")


def test_on_a_terminal_it_is_a_bar(capsys):
    progress = Progress(logging.getLogger("teran.test"), "evaluate", total=2, unit="calls", bar=True)
    progress.update(2, note="all")
    progress.close()
    err = capsys.readouterr().err
    assert "evaluate: 100%" in err and "2/2" in err and "all" in err
