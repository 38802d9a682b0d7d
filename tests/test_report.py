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


def test_reproduced_marks_the_rows_that_differ_not_their_names(capsys):
    rows = [("sum", 0.1 + 0.2, 0.3, "floating point"), (1, 2, 3, "a number as quantity"),
            ("same", 7, 7, "equal")]
    assert report.reproduced(rows) == ["sum", "1"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].endswith("<- differs") and "0.30000000000000004" in lines[2]
    assert lines[3].endswith("<- differs") and not lines[4].endswith("<- differs")
    with pytest.raises(ValueError, match="each quantity names one row: p name several"):
        report.reproduced([("p", 1, 1, "a"), ("p", 1, 2, "b")])


def test_record_writes_what_json_readers_accept(tmp_path, monkeypatch):
    np = pytest.importorskip("numpy")
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "out"))
    path = report.record("07_resnet", loss=float("nan"), best=np.float32(0.5), epochs=np.int64(3),
                         earlier=np.bool_(True), curve=np.array([0.25, np.inf]), pair=(1, 2))
    with open(path) as f:
        text = f.read()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["results"] == {"loss": None, "best": 0.5, "epochs": 3,
                                           "earlier": True, "curve": [0.25, None],
                                           "pair": [1, 2]}
    with pytest.raises(ValueError, match="cannot record"):
        report.record("07_resnet", model=object())
    for name in ("part/nb", "../escape", "", ".hidden", 7):
        with pytest.raises(ValueError, match="notebook is a file name"):
            report.record(name, accuracy=0.5)
    (tmp_path / "file").write_text("mine")
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "file"))
    with pytest.raises(ValueError, match="COURSE_RESULTS_DIR=.* is a file"):
        report.record("07_resnet", accuracy=0.5)
    assert (tmp_path / "file").read_text() == "mine"
