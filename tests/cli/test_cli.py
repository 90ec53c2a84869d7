"""The sdfit command end to end: files produced, summaries printed, errors as one sentence."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sdfit.cli import main
from sdfit.datasets import aging_chain_path
from sdfit.files import read_csv


@pytest.fixture(scope="module")
def small_census(census, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "counties.csv"
    census.head(40).to_csv(path)
    return path


def _spec(tmp_path, data, extra=""):
    spec = tmp_path / "spec.toml"
    spec.write_text(f"""
model = "{aging_chain_path()}"
data = "{data}"
[initial]
time = 2000
[targets]
times = [2010]
exclude = ["dec 1"]
[parameters]
"dec * loss rate" = {{ x0 = 0.05 }}
{extra}""")
    return spec


def test_fit_writes_tables_figures_and_summary(small_census, tmp_path, capsys, shared_data):
    out = tmp_path / "out"
    code = main(["fit", str(_spec(tmp_path, small_census)), "--out", str(out), "--quiet",
                 "--backend", "serial"])
    assert code == 0
    table = read_csv(out / "params.csv")
    assert len(table) == 40 and table["success"].all()
    for name in ("histogram.png", "observed_vs_fitted.png", "map.png"):
        assert (out / "figures" / name).stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "Fitted 40 units: 40 succeeded, 0 failed." in printed and "SSE quantiles" in printed


def test_flags_alone_pose_the_problem(small_census, tmp_path):
    out = tmp_path / "out"
    code = main(["fit", "--model", str(aging_chain_path()), "--data", str(small_census),
                 "--param", "dec * loss rate=0.05", "--fixed", "dec 1 loss rate=0.05",
                 "--initial-time", "2000", "--target-times", "2010", "--exclude", "dec 1",
                 "--out", str(out), "--quiet", "--backend", "serial", "--no-figures"])
    assert code == 0
    table = read_csv(out / "params.csv")
    assert "dec 1 loss rate" not in table.columns and "dec 2 loss rate" in table.columns


@pytest.mark.parametrize("extra_args, message", [
    (["--param", "dec * los rate"], "Did you mean"),
    (["--exclude", "dec 10"], "Excluded variable 'dec 10'"),
    (["--target-times", "2011"], "no time 2011"),
    (["--bounds", "dec * loss rate=1,0"], "lower 1 > upper 0"),
    (["--backend", "dusk"], "Unknown backend 'dusk'; choose one of serial, processes, dask."),
    (["--model", "missing.mdl"], "does not exist"),
])
def test_bad_input_is_one_sentence_exit_2_and_nothing_written(
        small_census, tmp_path, capsys, extra_args, message):
    out = tmp_path / "out"
    code = main(["fit", str(_spec(tmp_path, small_census)), "--out", str(out), "--quiet",
                 *extra_args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert not out.exists()


def test_unknown_spec_key_is_refused(small_census, tmp_path, capsys):
    spec = _spec(tmp_path, small_census, extra="[fit]\nbakend = 'serial'\n")
    assert main(["fit", str(spec), "--out", str(tmp_path / "o")]) == 2
    assert "unknown key 'bakend' in [fit]. Did you mean 'backend'?" in capsys.readouterr().err


def test_demo_recovers_planted_rates_as_an_installed_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "sdfit.cli", "demo", "--units", "500",
                           "--quiet", "--out", str(tmp_path)],
                          capture_output=True, text=True, check=True)
    assert "500 succeeded, 0 failed" in done.stdout
    assert "100.0% of units recovered every rate to 1e-6" in done.stdout
    planted, fitted = read_csv(tmp_path / "planted.csv"), read_csv(tmp_path / "params.csv")
    assert (planted["dec 5 loss rate"] - fitted["dec 5 loss rate"]).abs().max() < 1e-8


def test_a_rerun_replaces_figures_and_report_with_the_tables(tmp_path, capsys):
    """Figures and the report are written into the folder being prepared, so a re-run with
    --no-figures leaves no figure of the earlier run beside its new tables; a user's file
    stays."""
    from sdfit.datasets import aging_chain_path

    out = tmp_path / "out"
    flags = ["fit", "--model", str(aging_chain_path()), "--data", str(_demo_panel(tmp_path)),
             "--initial-time", "2000", "--target-times", "2010", "--exclude", "dec 1",
             "--param", "dec * loss rate=0.05", "--fixed", "dec 1 loss rate=0.05",
             "--out", str(out), "--backend", "serial", "-q"]
    assert main([*flags, "--report"]) == 0
    assert (out / "figures" / "histogram.png").is_file() and (out / "report.html").is_file()
    (out / "notes.txt").write_text("mine")
    assert main([*flags, "--no-figures"]) == 0
    capsys.readouterr()
    assert not (out / "figures").exists() and not (out / "report.html").exists()
    assert (out / "notes.txt").read_text() == "mine" and (out / "params.csv").is_file()
    assert main(["report", str(out)]) == 0 and (out / "report.html").is_file()
    assert main([*flags, "--no-figures"]) == 0
    assert not (out / "report.html").exists()  # the report sdfit wrote is replaced too


def _demo_panel(folder):
    from sdfit.datasets import aging_chain, synthetic_panel
    from sdfit.demo import PLANTED

    panel, _ = synthetic_panel(aging_chain(), 6, PLANTED | {"dec 1 loss rate": (0.05, 0.05)},
                               {f"dec {k}": (100.0, 20000.0) for k in range(1, 10)}, [2010])
    return panel.to_csv(folder / "panel.csv")
