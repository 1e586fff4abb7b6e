import io

from catalog.importing.progress import Progress


def test_it_draws_rows_rate_and_eta_on_a_terminal():
    bar = Progress(io.StringIO(), total_bytes=1000, label="log.jsonl", enabled=True)

    line = bar.render(rows=5000, bytes_read=250, elapsed=2.0)

    assert line.startswith("log.jsonl [######------------------]  25.0%")
    assert "5,000 rows" in line
    assert "2,500 rows/s" in line
    assert line.endswith("ETA 0:06")


def test_it_stays_quiet_when_not_a_terminal():
    stream = io.StringIO()
    bar = Progress(stream, total_bytes=1000, label="log.jsonl")

    bar.update(10, 100)
    bar.close(10, 1000)

    assert not bar.enabled
    assert stream.getvalue() == ""


def test_closing_on_a_terminal_ends_the_line():
    stream = io.StringIO()
    bar = Progress(stream, total_bytes=0, label="records", enabled=True)

    bar.close(42, 0)

    assert stream.getvalue().startswith("\rrecords 42 rows")
    assert stream.getvalue().endswith("\n")
