import json

import pytest

from course_lib import report


def test_reproduced_prints_every_row_and_returns_those_that_differ(capsys):
    rows = [
        ("parameters", 60_965_224, 60_965_224, "bvlc_alexnet"),
        ("neurons conv1", 290_400, 253_440, "Figure 2's caption"),
        ("stem", "7x7, 2", "7x7, 2", "Section 4.1"),
        ("accuracy", 0.52, None, "this run"),
    ]
    assert report.reproduced(rows) == ["neurons conv1"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Reproduced vs paper" and len(lines) == 6
    assert "60,965,224" in lines[2] and lines[3].endswith("<- differs")
    assert "<- differs" not in lines[5] and " - " in lines[5]
    with pytest.raises(ValueError, match="quantity, here, paper, source"):
        report.reproduced([("parameters", 1, 1)])


def test_provenance_says_who_trained_the_result():
    now = {"run": {"backend": "jax", "device": "cpu", "date": "2026-11-28 05:00:00",
                   "seconds": 90.0, "earlier": False}}
    assert report.provenance(now) == "trained now: jax on cpu, 1.5 min of training"
    earlier = {"run": {**now["run"], "device": "NVIDIA H100", "earlier": True}}
    assert report.provenance(earlier).startswith("from an earlier run's checkpoint: jax on "
                                                 "NVIDIA H100, 2026-11-28 05:00:00")
    assert "no record" in report.provenance({})


def test_record_writes_json_only_where_asked(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_RESULTS_DIR", raising=False)
    assert report.record("01_alexnet", accuracy=0.5) is None
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    path = report.record("01_alexnet", accuracy=0.5, minutes=1.25)
    with open(path) as f:
        written = json.load(f)
    assert written["results"] == {"accuracy": 0.5, "minutes": 1.25}
    assert written["profile"] == "smoke" and written["notebook"] == "01_alexnet"
    assert {"python", "keras"} <= set(written["versions"])
