"""Bad input through the command line, end to end: every case ends in one sentence on
stderr naming what is wrong and where, exit status 2, no traceback, nothing written.  The
CLI runs in process (``main(argv)``); a few cases also run the installed command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sdfit.cli import main
from sdfit.datasets import aging_chain, aging_chain_path, synthetic_panel
from sdfit.files import read_csv

SPEC = """
model = "{model}"
data = "{data}"
[initial]
time = 2000
{initial}
[targets]
times = [2010]
exclude = ["dec 1"]
[parameters]
"dec * loss rate" = {{ x0 = 0.05 }}
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A good spec, model and panel (8 synthetic units, unit k on line k + 4), and bad ones."""
    root = tmp_path_factory.mktemp("bad-input")
    model = aging_chain()
    panel, _ = synthetic_panel(model, 8, {"dec 3 loss rate": (0.01, 0.05)},
                               {f"dec {k}": (100.0, 2000.0) for k in range(1, 10)}, [2010])
    good = panel.to_csv(root / "panel.csv").read_text().splitlines()

    def write(name: str, text: str | bytes):
        path = root / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    def with_cell(name: str, line: int, column: int, value: str):
        """The good panel with one cell replaced (line and column counted from 1)."""
        lines = list(good)
        cells = lines[line - 1].split(",")
        cells[column - 1] = value
        lines[line - 1] = ",".join(cells)
        return write(name, "\n".join(lines) + "\n")

    # columns: 1 unit id, 2-10 dec 1..9 at 2000, 11-19 dec 1..9 at 2010
    with_cell("text.csv", 5, 5, "abc")
    with_cell("negative.csv", 6, 14, "-3")
    with_cell("blank.csv", 7, 5, "")
    with_cell("infinite.csv", 8, 6, "inf")
    with_cell("duplicate.csv", 6, 1, "1")
    with_cell("unneeded-text.csv", 5, 11, "oops")  # dec 1 at 2010: excluded, not needed
    write("offgrid.csv", "\n".join([good[0].replace("2000.0", "2000.1").replace(
        "2010.0", "2010.1"), *good[1:]]) + "\n")
    write("empty.csv", "")
    write("header.csv", "a,b\n1,2\n")
    write("ragged.csv", "\n".join([good[0], good[1] + ",extra", *good[2:]]) + "\n")
    write("binary.mdl", bytes(range(256)) * 4)
    write("table.mdl", "state,county,time\n1,2,3\n")
    write("syntax.mdl", "a = 1 +\n~~|\n")
    write("model.txt", aging_chain_path().read_text())
    write("zero-step.mdl", aging_chain_path().read_text().replace("0.125", "0"))
    write("tiny-step.mdl", aging_chain_path().read_text().replace("0.125", "1e-07"))
    write("file", "not a folder")
    write("short.mdl", aging_chain_path().read_text().replace("FINAL TIME=\n\t2010",
                                                              "FINAL TIME=\n\t2005"))
    spec = {"model": aging_chain_path(), "data": root / "panel.csv", "initial": ""}
    write("spec.toml", SPEC.format(**spec))
    write("stocks.toml", SPEC.format(**{**spec, "initial": 'stocks = ["dec 1", "dec10"]'}))
    write("unknown-key.toml", SPEC.format(**spec).replace("time = 2000", "tme = 2000"))
    write("not-toml.toml", SPEC.format(**spec).replace("times = [2010]", "times = [2010"))
    return root


def arguments(files, out, args, spec: str = "spec.toml") -> list[str]:
    return ["fit", str(files / spec), "--out", str(out), "--backend", "serial", "--quiet",
            "--no-figures", *(a.replace("{files}", str(files)) for a in args)]


def case_of(name: str):
    """(flags, expected parts of the message, spec file, --out or None) of a case written
    as (flags, expected[, spec[, more flags[, --out]]])."""
    args, expected, spec, extra, out = (*CASES[name], "spec.toml", [], None)[:5] \
        if len(CASES[name]) < 3 else (*CASES[name], *("spec.toml", [], None)[len(CASES[name])
                                                                             - 2:])
    return args + list(extra), expected, spec, out


def sdfit_fit(files, tmp_path, capsys, *args: str, spec: str = "spec.toml", out=None):
    """Run ``sdfit fit`` in process; returns (exit status, stdout, stderr) and the out folder."""
    out = tmp_path / "out" if out is None else out.replace("{files}", str(files))
    status = main(arguments(files, out, args, spec))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess([], status, captured.out, captured.err), out


CASES = {
    # model file
    "model missing": (["--model", "{files}/missing.mdl"],
                      ["Model file '", "missing.mdl' does not exist."]),
    "model binary": (["--model", "{files}/binary.mdl"],
                     ["binary.mdl' is not a Vensim model file (it is binary)."]),
    "model is a table": (["--model", "{files}/table.mdl"],
                         ["table.mdl' could not be parsed at line 2, column 5"]),
    "model suffix": (["--model", "{files}/model.txt"],
                     ["model.txt' has suffix '.txt'; expected one of .mdl"]),
    "model syntax error": (["--model", "{files}/syntax.mdl"],
                           ["syntax.mdl' could not be parsed at line 1, column 6 in the "
                            "equation of 'a'"]),
    # data file
    "data missing": (["--data", "{files}/absent.csv"], ["absent.csv' does not exist."]),
    "data empty": (["--data", "{files}/empty.csv"], ["empty.csv' is empty."]),
    "data header shape": (["--data", "{files}/header.csv"],
                          ["header.csv' is neither wide", "nor long"]),
    "data ragged header": (["--data", "{files}/ragged.csv"],
                           ["ragged.csv': line 2 has 20 cells but line 1 has 19."]),
    # values of the units
    "non-numeric value": (["--data", "{files}/text.csv"],
                          ["text.csv' has 1 unit(s) with non-numeric",
                           "line 5 (unit=1): non-numeric value 'abc' in column 'dec 4' at "
                           "time 2000", "--drop-invalid"]),
    "negative count": (["--data", "{files}/negative.csv", "--likelihood", "poisson"],
                       ["line 6 (unit=2): negative value -3 (a count) in column 'dec 4' at "
                        "time 2010"]),
    "missing value": (["--data", "{files}/blank.csv"],
                      ["line 7 (unit=3): missing value in column 'dec 4' at time 2000"]),
    "infinite value": (["--data", "{files}/infinite.csv"],
                       ["line 8 (unit=4): infinite value in column 'dec 5' at time 2000"]),
    "duplicate unit ids": (["--data", "{files}/duplicate.csv"],
                           ["duplicate.csv' has duplicate unit ids: unit=1 on lines 5 and 6."]),
    # names
    "parameter not in model": (["--param", "dec * los rate"],
                               ["Parameter 'dec * los rate' matches no constant of model "
                                "'aging_chain'. Did you mean 'dec 9 loss rate'"]),
    "stock not in model": ([], ["The stock 'dec10' is not a variable of model 'aging_chain'. "
                                "Did you mean 'dec 1'"], "stocks.toml"),
    "target not in model": (["--targets", "dec 2 los rat"],
                            ["The target 'dec 2 los rat' is not a variable of model "
                             "'aging_chain'. Did you mean 'dec 2 loss rate'"]),
    # times
    "target time not in data": (["--target-times", "2011"],
                                ["panel.csv' has no time 2011 (it has 2000, 2010)."]),
    "initial time not in data": (["--initial-time", "2001"],
                                 ["panel.csv' has no time 2001 (it has 2000, 2010)."]),
    "observation after the run": (["--model", "{files}/short.mdl"],
                                  ["line 4 (unit=0): the observation of 'dec 2' at time 2010 "
                                   "lies outside the run from 2000 to 2005 (FINAL TIME of model "
                                   "'short')"]),
    "initial time off the grid": (["--data", "{files}/offgrid.csv", "--initial-time", "2000.1",
                                   "--target-times", "2010.1"],
                                  ["Initial time 2000.1 is not on the model's TIME STEP grid "
                                   "(2000 + k * 0.125)."]),
    # bounds
    "lower above upper": (["--bounds", "dec * loss rate=1,0"],
                          ["The bounds of parameter 'dec * loss rate' have lower 1 > upper 0."]),
    "x0 outside bounds": (["--bounds", "dec * loss rate=0,0.01"],
                          ["The x0 = 0.05 of parameter 'dec * loss rate' lies outside its "
                           "bounds [0, 0.01]."]),
    "bound not a number": (["--bounds", "dec * loss rate=0,lots"],
                           ["'lots' in 'dec * loss rate=0,lots' is not a number."]),
    # spec file and flags
    "unknown spec key": ([], ["unknown-key.toml': unknown key 'tme' in [initial]. Did you mean "
                              "'time'?"], "unknown-key.toml"),
    "spec not TOML": ([], ["not-toml.toml' is not valid TOML"], "not-toml.toml"),
    "TIME STEP 0": (["--model", "{files}/zero-step.mdl"],
                    ["The TIME STEP of model 'zero-step' is 0; it must be a positive number."]),
    "steps x units over the budget": (["--model", "{files}/tiny-step.mdl"],
                                      ["The run has 100,000,001 time steps (TIME STEP 1e-07 "
                                       "from 2000 to 2010) for 8 units: 8e+08 unit-steps per "
                                       "simulation, above the limit of 1e+08; raise it with "
                                       "--max-steps", ], "spec.toml", ["--max-steps", "1e8"]),
    "chunk size below 1": (["--chunk-size", "-3"], ["The 'chunk_size' setting must be an "
                                                   "integer >= 1; got -3 (from [fit] "
                                                   "chunk_size)."]),
    "workers not a number": (["--workers", "two"], ["'two' in '--workers' is not a number."]),
    "infinite initial time": (["--initial-time", "inf"], ["The 'time' setting of [initial] "
                                                          "must be a number; got inf"]),
    "likelihood misspelt": (["--likelihood", "poison"], ["The 'likelihood' setting of "
                                                        "[targets] must be one of 'gaussian', "
                                                        "'lognormal', 'poisson', "
                                                        "'negative-binomial'; got 'poison'",
                                                        "Did you mean 'poisson'?"]),
    "empty out path": ([], ["The results folder (--out) is empty; give a folder such as "
                            "'results'."],
                       "spec.toml", [], ""),
    "out under a file": ([], ["Results folder '", "file/out' cannot be made: '", "file' is a "
                              "file, not a folder."], "spec.toml", [], "{files}/file/out"),
    "map parameter misspelt": (["--map-parameter", "dec 2 los rate"],
                               ["--map-parameter 'dec 2 los rate' is not a constant of model "
                                "'aging_chain'. Did you mean 'dec 2 loss rate'"]),
    "scheduler without dask": (["--backend", "processes", "--scheduler", "tcp://127.0.0.1:1"],
                               ["A scheduler address is for the dask backend, not 'processes'"]),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_sentence_exit_2_and_nothing_written(files, case, tmp_path, capsys):
    args, expected, spec, out = case_of(case)
    done, out = sdfit_fit(files, tmp_path, capsys, *args, spec=spec, out=out)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("sdfit: error: "), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    for part in expected:
        assert part in done.stderr, done.stderr
    assert str(out) == "" or not Path(out).exists() or not any(Path(out).iterdir())


def test_drop_invalid_skips_and_lists_the_units(files, tmp_path, capsys):
    done, out = sdfit_fit(files, tmp_path, capsys, "--data", str(files / "text.csv"),
                          "--drop-invalid")
    assert done.returncode == 0, done.stderr
    assert "Fitted 7 units" in done.stdout
    assert ("Dropped 1 units with invalid data (listed in dropped.csv):\n  line 5 (unit=1): "
            "non-numeric value 'abc' in column 'dec 4' at time 2000") in done.stdout
    dropped = read_csv(out / "dropped.csv")
    assert dropped.to_dict("records") == [
        {"unit": 1, "line": 5, "reason": "non-numeric value 'abc' in column 'dec 4' at time 2000"}]
    assert 1 not in read_csv(out / "params.csv")["unit"].tolist()


def test_text_in_a_column_the_problem_does_not_need_is_no_error(files, tmp_path, capsys):
    done, out = sdfit_fit(files, tmp_path, capsys, "--data", str(files / "unneeded-text.csv"))
    assert done.returncode == 0, done.stderr
    assert "Fitted 8 units: 8 succeeded" in done.stdout


@pytest.mark.parametrize("case", ["model syntax error", "non-numeric value", "unknown spec key"])
def test_the_installed_command_says_the_same_in_a_real_process(files, case, tmp_path):
    args, expected, spec, _ = case_of(case)
    done = subprocess.run([sys.executable, "-m", "sdfit.cli",
                           *arguments(files, tmp_path / "out", args, spec)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr and all(p in done.stderr for p in expected)
