"""The trust tables (confirm columns, comparisons, budget curves, data size, provenance) in the leaderboard and
the report, on run folders written like a sweep with `search.confirm` and `data.train_sizes` writes them
(no Ray, no training): the search of tests/test_report.py at train size 1000, the rest made up with a known
answer."""
from __future__ import annotations

import json
import re

import pytest
from PIL import Image
from typer.testing import CliRunner

from raytune_ft.cli import app, print_leaderboard
from raytune_ft.results.report import write_report
from raytune_ft.results.tables import read_table, write_table
from raytune_ft.results.trust import boards, provenance_rows, size_crossovers
from tests.test_report import make_run, text_of

runner = CliRunner()
SIZES = (50, 200, 1000)
SEEDS = 3
# confirmed test accuracy (mean, std) per train size; who the seeds cannot tell apart from the best (Holm p >= .05).
# At 1000 the search ranks full first (0.97) but the confirm stage lora (0.92), full tied with it.
CONFIRMED = {
    50: {"feature_extraction": (0.70, 0.01), "full": (0.60, 0.03), "lora": (0.55, 0.02)},
    200: {"full": (0.85, 0.01), "lora": (0.84, 0.02), "feature_extraction": (0.75, 0.01)},
    1000: {"lora": (0.92, 0.01), "full": (0.91, 0.01), "feature_extraction": (0.80, 0.02)},
}
TIED = {50: {"feature_extraction"}, 200: {"full", "lora"}, 1000: {"lora", "full"}}
# expected best validation accuracy after 1..6 search trials (train size 1000), and each trial's wall seconds:
# lora leads up to 3 trials, full from 4; by compute, lora's cheaper trials keep it ahead up to 180 s
CURVES = {"lora": ([0.80, 0.85, 0.87, 0.88, 0.885, 0.89], 20.0),
          "full": ([0.60, 0.78, 0.86, 0.90, 0.92, 0.93], 60.0),
          "feature_extraction": ([0.50, 0.60, 0.65, 0.70, 0.72, 0.74], 10.0)}
PROVENANCE = {"packages": {"torch": "2.14.1", "raytune_ft": "0.1.0"}, "git_commit": "a" * 40,
              "data": {"train.pt": "b" * 64}, "weights": {"efficientnet-lite0": "c" * 64},
              "spec": {"name": "demo", "search": {"confirm": {"top_k": 1, "seeds": SEEDS}}}}


def make_trust_run(path, monkeypatch, sizes=SIZES):
    """tests/test_report.py's run, then the trust tables: every search trial at the largest size, one confirm
    trial per (strategy, size, seed), strategies.parquet per (strategy, size) with its confirm columns."""
    make_run(path, monkeypatch=monkeypatch)
    search = read_table(path / "strategies.parquet")
    trials = [{**t, "stage": "search", "train_size": sizes[-1]} for t in read_table(path / "trials.parquet")]
    for size in sizes:
        for name in CONFIRMED[size]:
            trials += [{**next(t for t in trials if t["strategy"] == name), "trial_id": f"c{size}-{name}-{seed}",
                        "stage": "confirm", "train_size": size, "seed": seed, "status": "completed"}
                       for seed in range(SEEDS)]
    trials.append({**trials[0], "trial_id": "c50-failed", "stage": "confirm", "train_size": sizes[0], "seed": 0,
                   "status": "error", "error_reason": "RuntimeError: confirm seed diverged"})
    write_table(trials, path / "trials.parquet")
    rows = []
    for size in sizes:
        for s in search:
            mean, std = CONFIRMED[size][s["strategy"]]
            rows.append({**s, "train_size": size, "confirm_mean": mean, "confirm_std": std, "ci_low": mean - 2 * std,
                         "ci_high": mean + 2 * std, "confirm_n": SEEDS, "confirm_config": s["best_config"],
                         "confirm_compute_seconds": 300.0, "tied_with_best": s["strategy"] in TIED[size]})
    write_table(rows, path / "strategies.parquet")
    pairs = []
    for size in sizes:
        for a, (ma, _) in CONFIRMED[size].items():
            for b, (mb, _) in CONFIRMED[size].items():
                if a != b:
                    holm = 0.40 if {a, b} <= TIED[size] else 0.01
                    pairs.append({"train_size": size, "metric": "test_accuracy", "strategy_a": a, "strategy_b": b,
                                  "n": SEEDS, "diff_mean": ma - mb, "diff_ci_low": ma - mb - 0.02,
                                  "diff_ci_high": ma - mb + 0.02, "p_a_better": 0.9 if ma > mb else 0.1,
                                  "p_value": holm / 2, "p_value_holm": holm})
    write_table(pairs, path / "comparisons.parquet")
    write_table(budget_rows(sizes[-1]), path / "budget_curves.parquet")
    write_table([{"strategy": name, "train_size": size, "score": mean, "ci_low": mean - 2 * std,
                  "ci_high": mean + 2 * std, "score_kind": "confirmed test val_accuracy"}
                 for size in sizes for name, (mean, std) in CONFIRMED[size].items()], path / "data_size.parquet")
    (path / "provenance.json").write_text(json.dumps(PROVENANCE))
    return path


def budget_rows(size, curves=CURVES):
    return [{"strategy": name, "train_size": size, "trials": n, "compute_seconds": n * wall, "expected_best": y,
             "band_low": y - 0.03, "band_high": min(1.0, y + 0.03), "band_method": "bootstrap over trials"}
            for name, (ys, wall) in curves.items() for n, y in enumerate(ys, start=1)]


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
    # at 1000, lora is best and full cannot be told apart from it, whatever the search said (full 0.9700)
    lines = blocks[1000]
    cells = [c.strip() for c in row_of(lines, "lora").split("│")[1:-1]]
    assert cells[:6] == ["lora", "best", "0.9200 ± 0.0100", "[0.9000, 0.9400]", "3", "0.9400"], cells
    assert "≈ best" in row_of(lines, "full") and "0.9700" in row_of(lines, "full")
    assert "≈ best" not in row_of(lines, "feature_extraction") and "below" in row_of(lines, "feature_extraction")
    assert "≈ best" not in "".join(blocks[50])  # nothing tied with the best there: no mark, no footnote
    assert "cannot be told apart" not in "".join(blocks[50])


def test_leaderboard_says_which_number_is_which(trust_run):
    out = runner.invoke(app, ["results", str(trust_run)]).output
    text = " ".join(out.split())
    for words in ("search: best validation val_accuracy, chosen on that same split — optimistic",
                  "≈ best: cannot be told apart from the best on 3 seeds (Holm-corrected paired test, p ≥ 0.05)",
                  "confirmed: test_accuracy of the configuration chosen on validation"):
        assert words in text
    headers = [" ".join(h.split()) for h in
               boards(read_table(trust_run / "strategies.parquet"), [], "val_accuracy", "max")[0].header]
    assert "confirmed test_accuracy: mean ± std" in headers and "search: best val_accuracy" in headers
    assert all(re.search(rf"┃\s*{w}\s*┃", out) for w in ("confirmed", "search:", "best", "mean ± std"))
    # trials and compute of both stages: 3 search trials of full and 3 confirm seeds, 140 s and 300 s
    assert "3 / 3" in row_of(blocks_of(out)[1000], "full") and "140 / 300" in row_of(blocks_of(out)[1000], "full")


def test_results_options_still_print_the_columns(trust_run):
    out = runner.invoke(app, ["results", str(trust_run), "--format", "csv"])
    assert out.output.splitlines()[0].startswith("strategy,trials,") and "confirm_mean" in out.output.splitlines()[0]
    out = runner.invoke(app, ["results", str(trust_run), "--sort", "confirm_mean"])
    assert "confirm_mean" in out.output and "≈ best" not in out.output


def test_a_run_without_confirm_scores_keeps_the_search_leaderboard(tmp_path, capsys):
    run = make_run(tmp_path / "run", with_test=False)
    write_table([{**r, "confirm_mean": None, "tied_with_best": None} for r in read_table(run / "strategies.parquet")],
                run / "strategies.parquet")
    out = runner.invoke(app, ["results", str(run)]).output
    assert "confirm_mean" in out and "search:" not in out  # the table's columns, as before
    print_leaderboard(run, "val_accuracy")  # what `run` prints at its end
    printed = capsys.readouterr().out
    assert "strategies by best val_accuracy" in printed and "confirmed" not in printed


# ---------------------------------------------------------------- the report


def test_report_has_the_trust_sections_and_figures(trust_run, page):
    for anchor in ("leaderboard", "comparisons", "budget", "data_size", "provenance", "scores", "failures"):
        assert f'<section id="{anchor}">' in page
    folder = trust_run / "report"
    for name in ("budget-1000", "data_size"):
        with Image.open(folder / f"{name}.png") as im:
            assert im.format == "PNG" and im.width >= 400 and len(im.convert("RGB").getcolors(1 << 20)) > 50
    assert not (folder / "budget.png").exists() and not (folder / "budget-50.png").exists()  # curves: 1000 only
    assert page.count("<img") == 5 + 2  # the search figures, a budget figure, the data-size figure


def test_report_leaderboard_ranks_by_confirmed_mean_and_marks_ties(page):
    part = page.split('<section id="leaderboard">')[1].split("</section>")[0].replace("_<wbr>", "_")
    assert [int(s) for s in re.findall(r"<h3>Train size (\d+)</h3>", part)] == list(SIZES)
    big = part.split("<h3>Train size 1000</h3>")[1]
    names = re.findall(r'class="swatch"[^>]*></span>([a-z_]+)</td>', big)
    assert names == ["lora", "full", "feature_extraction"]
    assert re.search(r'<tr class="win">.*?lora</td><td>best</td>', big)
    assert re.search(r"full</td><td>≈ best</td>", big) and "feature_extraction</td><td>below</td>" in big
    assert "search: best val_accuracy" in part and "confirmed test_accuracy: mean ± std" in part
    assert "compute s: search / confirm" in part and "trials: search / confirm" in part
    assert "cannot be told apart from the best on 3 seeds (Holm-corrected paired test, p ≥ 0.05)" in big
    assert ("Train size 1000: best confirmed lora, test_accuracy 0.9200 ± 0.0100, 95 % CI [0.9000, 0.9400], "
            "3 seeds; cannot be told apart from it: full.") in page


def test_report_pairwise_comparisons_once_per_pair(page):
    part = page.split('<section id="comparisons">')[1].split("</section>")[0]
    big = part.split("<h3>Train size 1000</h3>")[1].split("<h3>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", big.split("<tbody>")[1])
    assert len(rows) == 3  # 3 strategies, 3 unordered pairs
    cells = [re.findall(r"<td[^>]*>(?:<span[^>]*></span>)?([^<]*)</td>", r) for r in rows]
    assert [c[:2] for c in cells] == [["lora", "full"], ["lora", "feature_extraction"],
                                      ["full", "feature_extraction"]]
    assert cells[0][2:] == ["+0.0100", "[-0.0100, 0.0300]", "0.90", "0.200", "0.400", "3", "no"]
    assert cells[1][-1] == "yes" and "P(A beats B on a fresh seed)" in part and "Holm p" in part


def test_report_names_where_budget_and_data_size_curves_cross(page):
    assert ("By trials: With 1000 training samples: below 4 trials lora is the better bet; from 4 trials on, "
            "full (compared up to 6 trials).") in page
    assert ("By compute seconds: With 1000 training samples: below 20 s feature_extraction is the better bet; "
            "from 20 s on, lora (compared up to 60 s).") in page
    assert ("With 50 samples, feature_extraction leads.</p><p class=\"line\">At 200 samples, full leads."
            "</p><p class=\"line\">From 1000 samples on, lora leads.") in page
    assert "bootstrap over trials" in page  # the band's method


def test_report_provenance_and_the_search_figures_scope(page):
    part = page.split('<section id="provenance">')[1].split("</section>")[0]
    assert "torch 2.14.1" in part and "a" * 12 in part and "a" * 13 not in part and "b" * 12 in part
    assert "train.pt" in part and "efficientnet-lite0" in part and "confirm" not in part  # the spec is named only
    assert "the search figures show the search trials at train size 1000 only" in page
    assert "8 trials (3 completed" in page  # the search's trials, not the 28 confirm ones
    assert "RuntimeError: confirm seed diverged" in page  # a failed confirm trial is listed


def test_old_run_renders_as_before(tmp_path):
    run = make_run(tmp_path / "run", with_test=False)
    page = text_of(write_report(run))
    for anchor in ("comparisons", "budget", "data_size", "provenance"):
        assert f'id="{anchor}"' not in page
    assert "<h3>" not in page and "Winner: full with best val_accuracy 0.9700" in page
    assert "confirm" not in page and "search figures" not in page
    assert not list((run / "report").glob("budget*.png")) and not (run / "report" / "data_size.png").exists()


def test_one_train_size_gives_a_note_not_a_data_size_figure(tmp_path, monkeypatch):
    run = make_trust_run(tmp_path / "run", monkeypatch, sizes=(1000,))
    (run / "report").mkdir()
    for stale in ("budget-50.png", "data_size.png"):  # from an earlier report of a run with other sizes
        (run / "report" / stale).write_bytes(b"")
    page = text_of(write_report(run))
    assert "One train size only (1000 samples)" in page and not (run / "report" / "data_size.png").exists()
    assert sorted(p.name for p in (run / "report").glob("budget*.png")) == ["budget-1000.png"]
    assert "<h3>Train size 1000</h3>" in page and "train sizes" not in page


def test_missing_tests_and_unbounded_bands_as_the_statistics_write_them(tmp_path, monkeypatch):
    """results/stats.py writes nan where a pair has no test (fewer than two shared seeds); a metric without
    bounds (a loss) has an infinite band."""
    run = make_trust_run(tmp_path / "run", monkeypatch, sizes=(1000,))
    nan = float("nan")
    write_table([{**c, "n": 1, "diff_ci_low": nan, "diff_ci_high": nan, "p_a_better": nan, "p_value": nan,
                  "p_value_holm": nan} for c in read_table(run / "comparisons.parquet")], run / "comparisons.parquet")
    write_table([{**r, "band_low": -float("inf"), "band_high": float("inf")} for r in budget_rows(1000)],
                run / "budget_curves.parquet")
    page = text_of(write_report(run))
    part = page.split('<section id="comparisons">')[1].split("</section>")[0]
    cells = re.findall(r"<td[^>]*>(?:<span[^>]*></span>)?([^<]*)</td>", part.split("<tbody>")[1].split("</tr>")[0])
    assert cells == ["lora", "full", "+0.0100", "-", "-", "-", "-", "1", "no"]
    with Image.open(run / "report" / "budget-1000.png") as im:
        assert len(im.convert("RGB").getcolors(1 << 20)) > 50
    from raytune_ft.results.report import load_run
    from raytune_ft.results.trust_figures import plot_budget

    shaded = lambda rows: [len(ax.collections) for ax in plot_budget(load_run(run), rows)[0].axes]  # noqa: E731
    assert shaded(read_table(run / "budget_curves.parquet")) == [0, 0]  # an infinite band would cover the axes
    assert shaded(budget_rows(1000)) == [3, 3]


# ---------------------------------------------------------------- crossover sentences on constructed curves


def test_size_crossovers_only_compare_strategies_run_at_that_size():
    rows = [{"strategy": "fe", "train_size": 50, "score": 0.7}, {"strategy": "full", "train_size": 50, "score": 0.6},
            {"strategy": "fe", "train_size": 200, "score": 0.75}, {"strategy": "full", "train_size": 200, "score": 0.8},
            {"strategy": "full", "train_size": 800, "score": 0.9}, {"strategy": "fe", "train_size": 800, "score": 0.7},
            {"strategy": "ia3", "train_size": 50, "score": 0.2}]
    assert size_crossovers(rows, mode="max") == ["With 50 samples, fe leads.", "From 200 samples on, full leads."]
    assert size_crossovers(rows, mode="min") == ["With 50 samples, ia3 leads.", "From 200 samples on, fe leads."]


def test_provenance_rows_shorten_hashes_and_name_the_spec():
    rows = dict(provenance_rows(PROVENANCE))
    assert rows["git_commit"] == "a" * 12 and rows["data"] == "train.pt " + "b" * 12
    assert rows["packages"] == "torch 2.14.1, raytune_ft 0.1.0" and rows["spec"] == "in provenance.json (spec)"


def test_data_size_axis_is_logarithmic_only_when_the_sizes_span_more_than_ten_times():
    from types import SimpleNamespace

    from raytune_ft.results.trust_figures import plot_data_size

    run = SimpleNamespace(colors={"full": "#1f77b4", "lora": "#ff7f0e"}, better="higher")
    rows = lambda sizes: [{"strategy": n, "train_size": z, "score": 0.5} for n in run.colors for z in sizes]  # noqa: E731
    assert plot_data_size(run, rows((50, 200, 1000)))[0].axes[0].get_xscale() == "log"
    assert plot_data_size(run, rows((100, 1000)))[0].axes[0].get_xscale() == "linear"
