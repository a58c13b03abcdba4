"""How `spawn-report run` reads a job's end (kit/spawn_report/run.py): the status a
shell would give, the signal's name, and the stderr tail bounded as SPEC §4 says."""

from __future__ import annotations

import io
import os
import signal

from spawn_report.logs import MAX_EVENT_BYTES
from spawn_report.rows import MESSAGE_MAX
from spawn_report.run import TAIL_LINES, Tee, ended, tail_message


def test_an_exit_status_is_kept_and_a_signal_is_128_plus_n_with_its_name() -> None:
    assert ended(0) == (0, None)
    assert ended(3) == (3, None)
    assert ended(-signal.SIGKILL) == (137, "SIGKILL")
    assert ended(-signal.SIGTERM) == (143, "SIGTERM")


def test_the_tail_keeps_the_newest_whole_lines_within_message_max() -> None:
    lines = [f"frame {i}: " + "x" * 40 for i in range(TAIL_LINES)] + [
        "RuntimeError: CUDA out of memory"
    ]

    message = tail_message(lines[-TAIL_LINES:])

    assert message is not None
    assert len(message) <= MESSAGE_MAX
    assert message.endswith("\nRuntimeError: CUDA out of memory")
    kept = message.split("\n")
    assert kept == lines[-len(kept) :]  # whole lines, newest, in order


def test_a_newest_line_longer_than_the_message_is_cut_and_empty_stderr_is_none() -> None:
    message = tail_message(["old", "E" * 2000])

    assert message is not None
    assert len(message) == MESSAGE_MAX
    assert message.startswith("EEE")
    assert tail_message([]) is None


def test_the_tee_passes_bytes_untouched_and_hands_over_lines_and_long_parts() -> None:
    read, write = os.pipe()
    out = io.BytesIO()
    lines: list[str] = []
    data = b"one\r\ntwo\nbad \xff byte\n" + b"z" * (MAX_EVENT_BYTES + 10) + b"\nlast"
    tee = Tee([(os.fdopen(read, "rb"), out, lines.append)])
    with os.fdopen(write, "wb") as pipe:
        pipe.write(data)
    tee.thread.join(10)

    assert out.getvalue() == data
    assert lines[:3] == ["one", "two", "bad \ufffd byte"]
    assert [len(x) for x in lines[3:5]] == [MAX_EVENT_BYTES, 10]
    assert lines[5:] == ["last"]


def test_a_closed_terminal_never_stops_the_tee() -> None:
    read, write = os.pipe()
    out = io.BytesIO()
    out.close()
    lines: list[str] = []
    tee = Tee([(os.fdopen(read, "rb"), out, lines.append)])
    with os.fdopen(write, "wb") as pipe:
        pipe.write(b"a\nb\n")
    tee.thread.join(10)

    assert not tee.thread.is_alive()
    assert lines == ["a", "b"]


def test_one_reader_keeps_the_order_lines_were_written_across_stdout_and_stderr() -> None:
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    lines: list[str] = []
    os.write(out_write, b"first, on stdout\n")
    os.write(err_write, b"second, on stderr\n")
    tee = Tee(
        [
            (os.fdopen(out_read, "rb"), None, lambda x: lines.append("out " + x)),
            (os.fdopen(err_read, "rb"), None, lambda x: lines.append("err " + x)),
        ]
    )
    os.close(out_write)
    os.close(err_write)
    tee.thread.join(10)

    assert lines == ["out first, on stdout", "err second, on stderr"]
