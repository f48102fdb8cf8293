"""The hidden --clock-file seam: `costwarden run` reads its time from a file a test moves."""

from __future__ import annotations

import contextlib
import io
from datetime import UTC, datetime

import pytest

from costwarden.cli import build_parser, main
from costwarden.operator.fileclock import FileClock

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_the_clock_reads_the_file_and_never_goes_back(tmp_path):
    path = tmp_path / "clock"
    path.write_text("2026-12-07T12:00:00Z\n")
    clock = FileClock(path)
    assert clock() == T0
    path.write_text("2026-12-07T12:01:30+00:00")
    assert clock() == datetime(2026, 12, 7, 12, 1, 30, tzinfo=UTC)
    path.write_text("2026-12-07T12:00:30Z")  # earlier: kept at the latest
    assert clock() == datetime(2026, 12, 7, 12, 1, 30, tzinfo=UTC)
    for unreadable in ("", "2026-12-07T12:05:00", "not a time"):  # half written, no zone, junk
        path.write_text(unreadable)
        assert clock() == datetime(2026, 12, 7, 12, 1, 30, tzinfo=UTC)
    path.unlink()
    assert clock() == datetime(2026, 12, 7, 12, 1, 30, tzinfo=UTC)
    path.write_text("2026-12-07T14:00:00+01:00")
    assert clock() == datetime(2026, 12, 7, 13, 0, tzinfo=UTC)


def test_a_clock_file_without_a_time_is_refused(tmp_path):
    with pytest.raises(ValueError, match="clock file"):
        FileClock(tmp_path / "missing")
    (tmp_path / "naive").write_text("2026-12-07T12:00:00")
    with pytest.raises(ValueError, match="zone"):
        FileClock(tmp_path / "naive")


def test_costwarden_run_takes_the_flag_but_does_not_advertise_it(tmp_path, capsys):
    args = build_parser(load=()).parse_args(["run", "--clock-file", str(tmp_path / "clock")])
    assert args.clock_file == tmp_path / "clock"
    with contextlib.redirect_stdout(io.StringIO()) as out, pytest.raises(SystemExit):
        build_parser(load=()).parse_args(["run", "--help"])
    assert "--clock-file" not in out.getvalue()
    assert main(["run", "--clock-file", str(tmp_path / "missing"), "--metrics-port", "0"]) == 2
    assert "clock file" in capsys.readouterr().err
