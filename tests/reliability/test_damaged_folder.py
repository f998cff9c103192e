"""A search folder damaged by hand, by a crash or by another program: `nnexp search` and
`nnexp report` stop with one `error:` line naming the file (exit 2, or 1 when the OS refuses
to read it), never a traceback, and never rewrite the damaged log."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from nnexp.cli import app

runner = CliRunner()
OK = '{"trial_id":"c0-s0","config_id":"c0","seed":0,"status":"ok","params":{}}\n'

# (what to put where, exit code, the one error line holds)
CASES = {
    "log-is-a-directory": ("trials.jsonl", None, 1, ["trials.jsonl: cannot read the trials log (Is a directory)"]),
    "damaged-middle-line": ("trials.jsonl", '{"broken\n' + OK, 2, ["trials.jsonl: line 1 is not valid JSON"]),
    "binary-middle-line": ("trials.jsonl", b"\xff\xfe\x00garbage\n" + OK.encode(), 2, ["line 1 is not valid JSON"]),
    "json-but-not-a-record": ("trials.jsonl", '{"a": 1}\n', 2, ["line 1 is not a trial record"]),
    "json-list": ("trials.jsonl", OK + "[1, 2]\n", 2, ["line 2 is not a trial record"]),
    "params-null": ("trials.jsonl", OK + OK.replace('"params":{}', '"params":null'), 2, ["line 2 is not a trial record"]),
    "unknown-status": ("trials.jsonl", OK + OK.replace('"ok"', '"weird"'), 2, ["line 2 is not a trial record"]),
    "history-a-number": ("trials.jsonl", OK.replace('"params":{}', '"params":{},"history":5'), 2,
                         ["line 1 is not a trial record"]),
    "garbage-search-yaml": ("search.yaml", "{{{ not: yaml: [", 2, ["search.yaml: not valid YAML"]),
    "search-yaml-a-list": ("search.yaml", "- a list\n", 2, ["search.yaml: not a saved search"]),
}


@pytest.fixture
def searched(tmp_path):
    spec = tmp_path / "g.yaml"
    spec.write_text(yaml.safe_dump({"name": "g", "experiment": {"data": {"dataset": "iris"}, "train": {"epochs": 1}},
                                    "repeats": 1, "space": {"optimizer.lr": [0.1]}}))
    folder = tmp_path / "res" / "g"
    folder.mkdir(parents=True)
    return spec, folder


def check(result, code, needles):
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_search_folder_is_one_error_line(searched, case):
    spec, folder = searched
    name, content, code, needles = CASES[case]
    target = folder / name
    if content is None:
        target.mkdir()
    else:
        target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)
    if name == "search.yaml":
        (folder / "trials.jsonl").write_text(OK)
    before = (folder / "trials.jsonl").read_bytes() if (folder / "trials.jsonl").is_file() else None

    result = runner.invoke(app, ["search", str(spec), "--results-dir", str(folder.parent), "-q", "--n-jobs", "1"])
    check(result, code, needles)
    if before is not None:
        assert (folder / "trials.jsonl").read_bytes() == before  # nothing appended to or repaired in a damaged log
    assert not (folder / ".lock").exists()

    report = runner.invoke(app, ["report", str(folder), "-q"])
    check(report, code, needles)


def test_torn_binary_tail_is_dropped_and_the_search_completes(searched):
    """Garbage after the last newline (a crash, NULs after a power cut) is a torn line: dropped with a warning."""
    spec, folder = searched
    assert runner.invoke(app, ["search", str(spec), "--results-dir", str(folder.parent), "-q",
                               "--n-jobs", "1"]).exit_code == 0
    log = folder / "trials.jsonl"
    good = log.read_bytes()
    log.write_bytes(good + b"\x00\x00\xff\xfe")
    result = runner.invoke(app, ["search", str(spec), "--results-dir", str(folder.parent), "-q", "--n-jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "torn last line" in result.stderr and "Traceback" not in result.output
    assert log.read_bytes() == good and len([json.loads(x) for x in good.splitlines()]) == 1
