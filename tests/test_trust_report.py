"""The trust tables (confirm columns, comparisons, budget curves, data size, provenance) in the leaderboard and
the report, on run folders written like a sweep with `search.confirm` and `data.train_sizes` writes them (no Ray,
no training): tests/test_report.py's search at each train size, confirm trials with known test scores, and the
tables made from them by the run's own functions (analysis/confirm.py, budget.py, data_size.py)."""
from __future__ import annotations

import json
import re

import pytest
from PIL import Image
from typer.testing import CliRunner

from raytune_ft.analysis.budget import budget_curves, metric_bounds
from raytune_ft.analysis.confirm import strategy_table
from raytune_ft.analysis.data_size import data_size_rows, size_sentences
from raytune_ft.cli import app, print_leaderboard
from raytune_ft.report.leaderboard import boards
from raytune_ft.report.page import write_report
from raytune_ft.report.trust import provenance_rows
from raytune_ft.results.tables import read_table, write_table
from tests.test_report import TRIALS, make_run, text_of

runner = CliRunner()
SIZES = (50, 200, 1000)
SEEDS = 7  # three strategies: a claim needs 7 (analysis/stats.py seeds_for_a_claim)
# confirmed test accuracy (mean, std) per train size. At 50 feature_extraction is far ahead (told apart); at 200
# and 1000 the two best are 0.01 apart (not told apart) and feature_extraction is far below. At 1000 the
# search ranks full first (0.97) but the confirm stage lora (0.92).
CONFIRMED = {
    50: {"feature_extraction": (0.70, 0.01), "full": (0.60, 0.03), "lora": (0.55, 0.02)},
    200: {"full": (0.85, 0.01), "lora": (0.84, 0.02), "feature_extraction": (0.75, 0.01)},
    1000: {"lora": (0.92, 0.01), "full": (0.91, 0.01), "feature_extraction": (0.80, 0.02)},
}
PATTERN = [-1.2, 0.3, 1.1, -0.4, 0.8, -0.9, 0.3]  # mean 0: each strategy's seeds spread around its mean
PROVENANCE = {"packages": {"torch": "2.14.1", "raytune_ft": "0.1.0"}, "git_commit": "a" * 40,
              "data": {"train.pt": "b" * 64}, "weights": {"efficientnet-lite0": "c" * 64},
              "spec": {"name": "demo", "search": {"confirm": {"top_k": 1, "seeds": SEEDS}}}}


def confirm_trials(search: list[dict], sizes, seeds: int, failed: tuple = ()) -> list[dict]:
    out = []
    for size in sizes:
        for k, (name, (mean, std)) in enumerate(CONFIRMED[size].items()):
            source = next(t for t in search if t["strategy"] == name and t["train_size"] == size)
            for seed in range(seeds):
                z = PATTERN[(seed + 2 * k) % len(PATTERN)]  # shifted per strategy: pairs differ seed to seed
                out.append({**source, "trial_id": f"c{size}-{name}-{seed}", "stage": "confirm", "seed": seed,
                            "source_trial_id": source["trial_id"], "score": mean, "test_accuracy": mean + z * std,
                            "test_samples": 500, "wall_seconds": 100.0,
                            "status": "error" if (size, name) in failed else "completed",
                            "error_reason": "RuntimeError: confirm seed diverged" if (size, name) in failed else None})
    return out


def make_trust_run(path, monkeypatch, sizes=SIZES, seeds=SEEDS, failed=()):
    """tests/test_report.py's run with its search repeated at every train size, confirm trials, and the tables a
    sweep writes from them."""
    make_run(path, monkeypatch=monkeypatch)
    tested = {r["strategy"]: r for r in read_table(path / "strategies.parquet")}  # the best trials' test scores
    search = [{**t, "trial_id": f"{t['trial_id']}@{size}", "stage": "search", "train_size": size}
              for size in sizes for t in read_table(path / "trials.parquet")]
    trials = search + confirm_trials(search, sizes, seeds, failed)
    write_table(trials, path / "trials.parquet")
    strategies, comparisons = strategy_table(trials, "max", "val_accuracy")
    for row in strategies:
        if row["train_size"] == sizes[-1]:
            row.update({k: tested[row["strategy"]].get(k) for k in ("test_accuracy", "test_f1", "test_loss")})
    write_table(strategies, path / "strategies.parquet")
    write_table(comparisons, path / "comparisons.parquet")
    write_table(budget_curves(search, mode="max", bounds=metric_bounds("val_accuracy")), path / "budget_curves.parquet")
    write_table(data_size_rows(strategies, "test_accuracy", "val_accuracy"), path / "data_size.parquet")
    (path / "provenance.json").write_text(json.dumps(PROVENANCE))
    return path


@pytest.fixture(scope="module")
def trust_run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        return make_trust_run(tmp_path_factory.mktemp("runs") / "trust-1", mp)


@pytest.fixture(scope="module")
def page(trust_run):
    return text_of(write_report(trust_run))


# ---------------------------------------------------------------- the leaderboard (raytune-ft results)


def blocks_of(output: str) -> dict[int, list[str]]:
    """The leaderboard's lines per train size (its title names the size)."""
    out, size = {}, None
    for line in output.splitlines():
        if m := re.search(r"train size (\d+)", line):
            size = int(m.group(1))
        if size is not None:
            out.setdefault(size, []).append(line)
    return out


def row_of(lines: list[str], name: str) -> str:
    return next(line for line in lines if re.search(rf"\b{name}\b", line))


def test_the_standings_the_statistics_give(trust_run):
    by = {(r["train_size"], r["strategy"]): r for r in read_table(trust_run / "strategies.parquet")}
    assert by[50, "feature_extraction"]["standing"] == "best"
    assert by[50, "full"]["standing"] == by[50, "lora"]["standing"] == "below"
    for size, top, close in ((200, "full", "lora"), (1000, "lora", "full")):
        assert by[size, top]["standing"] == "highest mean" and by[size, close]["standing"] == "not told apart"
        assert by[size, "feature_extraction"]["standing"] == "below"
        assert by[size, close]["seeds_needed"] > SEEDS
    assert {r["claim_seeds"] for r in by.values()} == {7} and {r["metric"] for r in by.values()} == {"val_accuracy"}


def test_leaderboard_one_block_per_size_ordered_by_confirmed_mean(trust_run):
    out = runner.invoke(app, ["results", str(trust_run)])
    assert out.exit_code == 0, out.output
    blocks = blocks_of(out.output)
    assert sorted(blocks) == list(SIZES)
    for size, confirmed in CONFIRMED.items():
        lines = blocks[size]
        order = sorted(confirmed, key=lambda n: -confirmed[n][0])
        positions = [lines.index(row_of(lines, name)) for name in order]
        assert positions == sorted(positions), (size, order)
    lines = blocks[1000]
    cells = re.split(r"\s{2,}", row_of(lines, "lora").strip())  # two spaces or more between columns
    assert cells[0] == "lora" and cells[1] == "highest mean" and cells[4] == "0.9400", cells
    assert "train size 1000, 7 seeds" in lines[0]  # every strategy had 7: said once, in the title
    assert "not told apart" in row_of(lines, "full") and "0.9700" in row_of(lines, "full")
    assert "below" in row_of(lines, "feature_extraction")
    assert "best" in row_of(blocks[50], "feature_extraction")


def test_leaderboard_says_which_number_is_which_and_what_a_claim_needs(trust_run):
    out = runner.invoke(app, ["results", str(trust_run)]).output
    text = " ".join(out.split())
    for words in ("search: best validation val_accuracy, chosen on that same split — optimistic",
                  "confirmed: test_accuracy of the configuration chosen on validation",
                  "not another sample of data",
                  "intervals that hold for every pair at once (95 %)",
                  "A claim needs at least 7 seeds for 3 strategies"):
        assert words in text, words
    headers = [" ".join(h.split()) for h in
               boards(read_table(trust_run / "strategies.parquet"), [], "val_accuracy", "max", wide=True)[0].header]
    assert "confirmed test_accuracy mean ± std" in headers and "search best val_accuracy" in headers  # the report's
    narrow = boards(read_table(trust_run / "strategies.parquet"), [], "val_accuracy", "max")[0]  # the terminal's
    assert narrow.title.startswith("strategies by confirmed test_accuracy") and "search best" in [
        " ".join(h.split()) for h in narrow.header]


def test_results_options_still_print_the_columns(trust_run):
    out = runner.invoke(app, ["results", str(trust_run), "--format", "csv"])
    header = out.output.splitlines()[0]
    assert header.startswith("strategy,train_size,metric,trials,") and "confirm_mean" in header and "standing" in header


def test_a_run_without_confirm_scores_keeps_the_search_leaderboard_and_says_what_it_cannot_tell(tmp_path, capsys):
    run = make_run(tmp_path / "run", with_test=False)
    print_leaderboard(run, "val_accuracy")  # what `run` prints at its end
    printed = " ".join(capsys.readouterr().out.split())
    assert "strategies by best val_accuracy" in printed and "confirmed" not in printed.split("For confirmed")[0]
    assert "cannot tell strategies apart" in printed and "search.confirm" in printed


# ---------------------------------------------------------------- the report


def test_report_has_the_trust_sections_and_figures(trust_run, page):
    for anchor in ("leaderboard", "comparisons", "budget", "data_size", "provenance", "scores", "failures"):
        assert f'<section id="{anchor}">' in page
    folder = trust_run / "report"
    for name in ("budget-50", "budget-1000", "data_size"):
        with Image.open(folder / f"{name}.png") as im:
            assert im.format == "PNG" and im.width >= 400 and len(im.convert("RGB").getcolors(1 << 20)) > 50
    assert not (folder / "budget.png").exists()


def test_report_leaderboard_labels_and_headline(page):
    part = page.split('<section id="leaderboard">')[1].split("</section>")[0].replace("_<wbr>", "_")
    assert [int(s) for s in re.findall(r"<h3>Train size (\d+)</h3>", part)] == list(SIZES)
    big = part.split("<h3>Train size 1000</h3>")[1]
    assert re.findall(r'class="swatch"[^>]*></span>([a-z_]+)</td>', big) == ["lora", "full", "feature_extraction"]
    assert "lora</td><td>highest mean</td>" in big and "full</td><td>not told apart</td>" in big
    assert "feature_extraction</td><td>below</td>" in big and '<tr class="win">' not in big  # nobody told apart
    small = part.split("<h3>Train size 50</h3>")[1].split("<h3>")[0]
    assert re.search(r'<tr class="win">.*?feature_extraction</td><td>best</td>', small)
    assert "it − best of others (all pairs, 95 %)" in part and "compute s: search / confirm" in part
    assert "Train size 50: best confirmed feature_extraction, test_accuracy" in page
    assert "told apart from every other strategy" in page
    assert "Train size 1000: highest confirmed mean lora" in page and "not told apart from full." in page


def test_report_pairwise_comparisons_once_per_pair(page):
    part = page.split('<section id="comparisons">')[1].split("</section>")[0]
    big = part.split("<h3>Train size 1000</h3>")[1].split("<h3>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", big.split("<tbody>")[1])
    cells = [re.findall(r"<td[^>]*>(?:<span[^>]*></span>)?([^<]*)</td>", r) for r in rows]
    assert [c[:2] for c in cells] == [["lora", "full"], ["lora", "feature_extraction"], ["full", "feature_extraction"]]
    assert cells[0][2] == "+0.0100" and cells[0][4] == "no" and cells[1][4] == "yes"
    assert cells[1][6] == "meaningful" and cells[0][9] == "7"  # P(A beats B) read as Bouthillier et al. do
    assert "P(A beats B on a fresh seed) [95 % CI]" in part and "p (sign-flip, exact)" in part


def test_report_budget_sentences_claim_nothing_the_bands_do_not_support(page):
    # the search's 3 trials per strategy give bands spanning most of [0, 1]: no strategy leads anywhere
    assert ("By trials: With 1000 training samples: the strategies cannot be told apart at any budget "
            "(1 trial to 2 trials): their 95 % bands overlap, whatever the order of the curves.") in page
    assert "below 4 trials" not in page and "is the better bet" not in page
    assert "Early stopping: full 2 of 3, feature_extraction 1 of 2, lora 1 of 2 draws were stopped" in page


def test_report_data_size_sentences_follow_the_standings(page):
    assert ("With 50 samples: feature_extraction is the best, told apart from every other confirmed one (95 %, all "
            "pairs at once).") in page
    assert ("With 200 samples: full has the highest mean, not told apart from lora; below it: "
            "feature_extraction.") in page


def test_report_provenance_and_the_search_figures_scope(page):
    part = page.split('<section id="provenance">')[1].split("</section>")[0]
    assert "torch 2.14.1" in part and "a" * 12 in part and "a" * 13 not in part and "b" * 12 in part
    assert "train.pt" in part and "efficientnet-lite0" in part and "confirm" not in part  # the spec is named only
    assert "the search figures show the search trials at train size 1000 only" in page
    assert "8 trials (3 completed" in page


def test_a_strategy_whose_confirm_runs_failed_is_not_scored_by_its_search(tmp_path, monkeypatch):
    # the case: full's confirm runs all failed at 200; its search validation score must not stand in
    run = make_trust_run(tmp_path / "run", monkeypatch, failed=((200, "full"),))
    rows = {(r["train_size"], r["strategy"]): r for r in read_table(run / "data_size.parquet")}
    assert rows[200, "full"]["score"] is None and rows[200, "full"]["score_kind"] == "not confirmed"
    assert rows[200, "lora"]["score_kind"] == "confirmed test_accuracy"
    said = size_sentences(list(rows.values()), mode="max")
    assert ("With 200 samples: lora is the best, told apart from every other confirmed one (95 %, all pairs at once). "
            "No confirmed score: full.") in said
    assert "RuntimeError: confirm seed diverged" in text_of(write_report(run))  # the failures are listed


def test_too_few_seeds_make_no_claim_on_the_page(tmp_path, monkeypatch):
    run = make_trust_run(tmp_path / "run", monkeypatch, sizes=(50, 1000), seeds=3)
    page = text_of(write_report(run))
    assert "feature_extraction</td><td>highest mean</td>" in page.replace("_<wbr>", "_")
    assert "too few seeds" in page and '<tr class="win">' not in page.split('<section id="leaderboard">')[1]
    assert "3 seeds are too few to tell strategies apart" in page
    assert "A claim needs at least 7 seeds for 3 strategies" in page and "this table has 3" in page


def test_old_run_renders_without_trust_sections(tmp_path):
    run = make_run(tmp_path / "run", with_test=False)
    page = text_of(write_report(run))
    for anchor in ("comparisons", "budget", "data_size", "provenance"):
        assert f'id="{anchor}"' not in page
    assert "<h3>" not in page and "Search only: the best trial was full&#x27;s, val_accuracy 0.9700" in page
    assert not list((run / "report").glob("budget*.png")) and not (run / "report" / "data_size.png").exists()


def test_one_train_size_gives_a_note_not_a_data_size_figure(tmp_path, monkeypatch):
    run = make_trust_run(tmp_path / "run", monkeypatch, sizes=(1000,))
    (run / "report").mkdir()
    for stale in ("budget-50.png", "data_size.png"):  # from an earlier report of a run with other sizes
        (run / "report" / stale).write_bytes(b"")
    page = text_of(write_report(run))
    assert "One train size only (1000 samples)" in page and not (run / "report" / "data_size.png").exists()
    assert sorted(p.name for p in (run / "report").glob("budget*.png")) == ["budget-1000.png"]


def test_missing_tests_and_unbounded_bands_as_the_statistics_write_them(tmp_path, monkeypatch):
    """analysis/stats.py writes nan where a pair has no interval (fewer than two shared seeds); a metric without
    bounds (a loss) has an infinite band."""
    run = make_trust_run(tmp_path / "run", monkeypatch, sizes=(1000,))
    nan = float("nan")
    write_table([{**c, "n": 1, "diff_ci_low": nan, "diff_ci_high": nan, "p_a_better": nan, "p_a_better_low": nan,
                  "p_a_better_high": nan, "p_value": nan, "p_value_exact": nan, "told_apart": False}
                 for c in read_table(run / "comparisons.parquet")], run / "comparisons.parquet")
    curves = read_table(run / "budget_curves.parquet")
    write_table([{**r, "band_low": -float("inf"), "band_high": float("inf")} for r in curves],
                run / "budget_curves.parquet")
    page = text_of(write_report(run))
    part = page.split('<section id="comparisons">')[1].split("</section>")[0]
    cells = re.findall(r"<td[^>]*>(?:<span[^>]*></span>)?([^<]*)</td>", part.split("<tbody>")[1].split("</tr>")[0])
    assert cells == ["lora", "full", "+0.0100", "-", "no", "- -", "not significant", "-", "-", "1"]
    from raytune_ft.report.curve_figures import plot_budget
    from raytune_ft.report.run import load_run

    shaded = lambda rows: [len(ax.collections) for ax in plot_budget(load_run(run), rows)[0].axes]  # noqa: E731
    assert shaded(read_table(run / "budget_curves.parquet")) == [0, 0]  # an infinite band would cover the axes
    assert shaded(curves) == [3, 3]


def test_provenance_rows_shorten_hashes_and_name_the_spec():
    rows = dict(provenance_rows(PROVENANCE))
    assert rows["git_commit"] == "a" * 12 and rows["data"] == "train.pt " + "b" * 12
    assert rows["packages"] == "torch 2.14.1, raytune_ft 0.1.0" and rows["spec"] == "in provenance.json (spec)"


def test_data_size_axis_is_logarithmic_only_when_the_sizes_span_more_than_ten_times():
    from types import SimpleNamespace

    from raytune_ft.report.curve_figures import plot_data_size

    run = SimpleNamespace(colors={"full": "#1f77b4", "lora": "#ff7f0e"}, better="higher")
    rows = lambda sizes: [{"strategy": n, "train_size": z, "score": 0.5} for n in run.colors for z in sizes]  # noqa: E731
    assert plot_data_size(run, rows((50, 200, 1000)))[0].axes[0].get_xscale() == "log"
    assert plot_data_size(run, rows((100, 1000)))[0].axes[0].get_xscale() == "linear"


def test_colours_mean_one_thing():
    from raytune_ft.report.figures import STATUS_STYLE
    from raytune_ft.report.run import PALETTE

    status_colours = {v.lower() for style in STATUS_STYLE.values() for k, v in style.items() if "color" in k}
    assert not status_colours & {c.lower() for c in PALETTE}
    greys = {c for c in PALETTE if len({c[1:3], c[3:5], c[5:7]}) == 1}
    assert not greys  # greys are the statuses'


def test_tables_of_runs_with_and_without_confirm_tests_and_failures_read_as_one(tmp_path, monkeypatch):
    import pandas as pd

    make_trust_run(tmp_path / "runs" / "a", monkeypatch, failed=((200, "full"),))
    make_run(tmp_path / "runs" / "b", with_test=False)  # no confirm, no test scores; a failed trial
    make_run(tmp_path / "runs" / "c", [t for t in TRIALS if t[2] != "error"], with_test=False)  # nothing failed
    for table in ("trials", "strategies", "epochs"):
        both = pd.read_parquet([tmp_path / "runs" / r / f"{table}.parquet" for r in "abc"])
        assert len(both) == sum(len(read_table(tmp_path / "runs" / r / f"{table}.parquet")) for r in "abc")
    strategies = pd.read_parquet([tmp_path / "runs" / r / "strategies.parquet" for r in "abc"])
    assert {"metric", "confirm_mean", "standing"} <= set(strategies.columns)
    trials = pd.read_parquet([tmp_path / "runs" / r / "trials.parquet" for r in "abc"])
    assert str(trials["test_accuracy"].dtype) == "float64" and str(trials["error"].dtype) in ("object", "str", "string")
