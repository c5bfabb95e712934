"""Every table the CLI prints by default fits in 80 columns, on a terminal of 80 or of 200 (no Ray): the
leaderboard (with and without a confirm stage), each `results --table`, and `compare`; on run folders made
like tests/test_report.py and tests/test_trust_report.py make them."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from raytune_ft.cli import app, print_leaderboard
from raytune_ft.cli.tables import TableName
from tests.test_report import make_run
from tests.test_trust_report import make_trust_run

runner = CliRunner()
TERMINALS = ({"COLUMNS": "80"}, {"COLUMNS": "200"})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        return {"confirm": make_trust_run(root / "confirm", mp), "failed": make_trust_run(root / "failed", mp,
                                                                                        failed=((200, "full"),)),
                "search": make_run(root / "search", with_test=False)}


def widest(text: str) -> int:
    return max(len(line.rstrip()) for line in text.splitlines())


@pytest.mark.parametrize("env", TERMINALS)
@pytest.mark.parametrize("kind", ("confirm", "failed", "search"))
def test_the_leaderboard_fits_80(runs, kind, env):
    out = runner.invoke(app, ["results", str(runs[kind])], env=env)
    assert out.exit_code == 0, out.output
    assert widest(out.output) <= 80, out.output
    assert ("confirmed" if kind != "search" else "search only") in out.output


def test_results_prints_what_run_printed_at_its_end(runs, capsys):
    for kind in ("confirm", "search"):
        print_leaderboard(runs[kind], "val_accuracy")  # what `run` prints at its end
        assert runner.invoke(app, ["results", str(runs[kind])]).output == capsys.readouterr().out


@pytest.mark.parametrize("env", TERMINALS)
@pytest.mark.parametrize("table", [t.value for t in TableName])
def test_every_results_table_fits_80(runs, table, env):
    out = runner.invoke(app, ["results", str(runs["confirm"]), "--table", table], env=env)
    assert out.exit_code == 0, out.output
    assert widest(out.output) <= 80, out.output
    assert "None" not in out.output and "NaN" not in out.output and "nan " not in out.output
    if table in ("trials", "strategies", "epochs"):
        said = " ".join(out.output.split())
        assert " columns (left out to fit: " in said and "--columns" in said


def test_search_run_tables_fit_80(runs):
    for table in ("strategies", "trials", "epochs"):
        out = runner.invoke(app, ["results", str(runs["search"]), "--table", table], env={"COLUMNS": "200"})
        assert out.exit_code == 0 and widest(out.output) <= 80, out.output


@pytest.mark.parametrize("pair", (("confirm", "failed"), ("search", "confirm"), ("search", "failed")))
def test_compare_fits_80(runs, pair):
    out = runner.invoke(app, ["compare", str(runs[pair[0]]), str(runs[pair[1]])], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert widest(out.output.split("\n", 2)[2]) <= 80, out.output  # the table and notes (the A/B lines are paths)
    assert "val_accuracy" in out.output or "test_accuracy" in out.output


def test_the_narrow_board_keeps_every_number_the_report_has_per_strategy(runs):
    from raytune_ft.report.leaderboard import boards
    from raytune_ft.results.tables import read_table

    rows = read_table(runs["failed"] / "strategies.parquet")
    narrow, wide = boards(rows, [], "val_accuracy", "max"), boards(rows, [], "val_accuracy", "max", wide=True)
    for n, w in zip(narrow, wide):
        assert n.notes == w.notes and [r[0] for r in n.rows] == [r[0] for r in w.rows]
        for nr, wr in zip(n.rows, w.rows):
            assert nr[1:4] == wr[1:4] and nr[-1] == wr[5]  # standing, mean ± std, CI; search best
        seeds = {r[4] for r in w.rows if r[2] != "-"}
        assert (f", {seeds.pop()} seeds" in n.title) if len(seeds) == 1 else ("seeds" in n.header)
