"""The report's sections on how far its ranking can be trusted, each only where the run has its table:
the confirmed leaderboard (strategies.parquet's confirm columns), pairwise comparisons (comparisons.parquet),
budget curves (budget_curves.parquet), data size (data_size.parquet) and provenance (provenance.json).
The words and orders come from `trust.py`, the figures from `trust_figures.py`; `report.py` places the sections.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

from raytune_ft.layout import RunLayout
from raytune_ft.results.figures import _fmt, _num, save_png
from raytune_ft.results.report import Part, Row, Run, Section, Table, figure_section
from raytune_ft.results.trust import (boards, by_train_size, confirmed_first, confirmed_note, confirmed_text,
                                      has_confirm, interval, p_text, provenance_rows, search_note,
                                      signed, size_crossovers, test_metric, _int)
from raytune_ft.results.budget import crossovers
from raytune_ft.results.trust_figures import plot_budget, plot_data_size

HOLM_ALPHA = 0.05


def confirmed_leaderboard(run: Run) -> Section | None:
    """The leaderboard with search and confirmed scores side by side, one table per train size; None without a
    confirm stage (the report then shows the search leaderboard, as before)."""
    if not has_confirm(run.all_strategies):
        return None
    parts = []
    for b in boards(run.all_strategies, run.all_trials, run.metric, run.mode, wide=True):
        rows = [Row(cells, run.colors[cells[0]], win=cells[0] == b.best) for cells in b.rows]
        table = Table([h.replace("\n", " ") for h in b.header], rows, numeric=set(range(2, len(b.header))))
        parts.append(Part("" if b.train_size is None else f"Train size {b.train_size}", table=table,
                          lines=[b.footnote] if b.footnote else []))
    caption = (f"Two numbers per strategy. {search_note(run.metric)} {confirmed_note(run.metric)} Strategies are "
               f"ranked by the confirmed mean ({run.better} is better), the best shaded; '≈ best' marks one the "
               "seeds cannot tell apart from the best. Trials and compute seconds of both stages show the budget "
               "each strategy had.")
    return Section("leaderboard", "Leaderboard", "leaderboard", caption, parts=parts)


def trust_sections(run: Run, out_dir: Path) -> list[Section]:
    """Pairwise comparisons, budget curves and data size: those whose table the run has."""
    layout = RunLayout(run.dir)
    out = []
    if layout.comparisons.exists():
        out.append(comparisons_section(run, _read(layout.comparisons)))
    if layout.budget_curves.exists():
        out.append(budget_section(run, _read(layout.budget_curves), out_dir))
    if layout.data_size.exists():
        out.append(data_size_section(run, _read(layout.data_size), out_dir))
    return out


def comparisons_section(run: Run, comparisons: list[dict]) -> Section:
    parts = []
    for size, group in by_train_size(comparisons):
        ranked = confirmed_first([s for s in run.all_strategies if s.get("train_size") == size], run.mode)
        rank = {s["strategy"]: i for i, s in enumerate(ranked)}
        key = lambda name: (rank.get(name, len(rank)), name)  # noqa: E731
        pairs = sorted((c for c in group if key(c["strategy_a"]) < key(c["strategy_b"])),
                       key=lambda c: (key(c["strategy_a"]), key(c["strategy_b"])))
        metric = next((c["metric"] for c in pairs if c.get("metric")), test_metric(run.metric))
        header = ["A", "B", f"A − B: mean {metric}", "95 % CI", "P(A beats B on a fresh seed)", "p", "Holm p",
                  "seeds", "told apart"]
        rows = [Row([c["strategy_a"], c["strategy_b"], signed(c.get("diff_mean")),
                     interval(c.get("diff_ci_low"), c.get("diff_ci_high")), _fmt(c.get("p_a_better"), ".2f"),
                     p_text(c.get("p_value")), p_text(c.get("p_value_holm")), _int(c.get("n")),
                     # no test (fewer than two shared seeds): nothing tells them apart
                     "yes" if (_num(c.get("p_value_holm")) or 1.0) < HOLM_ALPHA else "no"],
                    run.colors.get(c["strategy_a"])) for c in pairs]
        parts.append(Part("" if size is None else f"Train size {size}",
                          table=Table(header, rows, numeric=set(range(2, len(header) - 1)))))
    caption = ("Each pair of strategies once, A the higher ranked. A − B is the mean over the seeds both share of "
               "A's confirmed score minus B's, with its 95 % CI over the seeds (bootstrap-t; Student's t below 5 seeds); P(A beats B on a fresh "
               "seed) is the probability that A does better on a seed neither has seen (Bouthillier et al. 2021); "
               "p is the paired test over the shared seeds (two-sided), Holm p the same corrected over all pairs of "
               f"that train size. Told apart: Holm p < {HOLM_ALPHA}.")
    return Section("comparisons", "Pairwise comparisons", "pairs", caption, parts=parts)


def budget_section(run: Run, curves: list[dict], out_dir: Path) -> Section:
    for stale in out_dir.glob("budget*.png"):  # an earlier report of this run may have had other sizes
        stale.unlink()
    parts, caption = [], None
    for size, group in by_train_size(curves):
        fig, text = plot_budget(run, group)
        image = None
        if fig is not None:
            caption = caption or text
            png = out_dir / ("budget.png" if size is None else f"budget-{size}.png")
            image = "data:image/png;base64," + base64.b64encode(save_png(fig, png)).decode("ascii")
        lines = [f"{label}: {' '.join(said)}" for label, x in (("By trials", "trials"),
                                                                 ("By compute seconds", "compute_seconds"))
                 if (said := crossovers(group, mode=run.mode, x=x))]
        parts.append(Part("" if size is None else f"Train size {size}", "" if fig else text, image=image,
                          lines=lines))
    return Section("budget", "What each strategy gives for a budget", "budget",
                   caption or "No budget curve has a point.", parts=parts)


def data_size_section(run: Run, rows: list[dict], out_dir: Path) -> Section:
    sizes = sorted({r["train_size"] for r in rows if r.get("train_size") is not None})
    if len(sizes) < 2:
        (out_dir / "data_size.png").unlink(missing_ok=True)
        return Section("data_size", "Which strategy wins at which data size", "data size",
                       f"One train size only ({', '.join(map(str, sizes)) or 'unknown'} samples): set "
                       "data.train_sizes to see how the ranking moves with the amount of data.", note=True)
    section = figure_section("data_size", "Which strategy wins at which data size", "data size",
                             plot_data_size(run, rows), out_dir)
    section.parts = [Part("", lines=size_crossovers(rows, mode=run.mode))]
    return section


def provenance_sections(run: Run) -> list[Section]:
    path = RunLayout(run.dir).provenance
    if not path.exists():
        return []
    try:
        provenance = json.loads(path.read_text())
    except ValueError as e:
        return [Section("provenance", "Provenance", "provenance", f"provenance.json could not be read: {e}",
                        note=True)]
    rows = [Row([what, value]) for what, value in provenance_rows(provenance if isinstance(provenance, dict)
                                                                   else {"provenance": provenance})]
    caption = ("What made this run, from provenance.json (every table carries the same JSON in its Parquet "
               "metadata): package versions, the code's git commit, hashes of the data files and model weights "
               "(sha256, first 12 characters).")
    return [Section("provenance", "Provenance", "provenance", caption, table=Table(["what", "value"], rows,
                                                                                    wrap={1}))]


def headline(run: Run) -> str | None:
    """The best confirmed strategy (per train size) and those that cannot be told apart from it; None without a
    confirm stage."""
    if not has_confirm(run.all_strategies):
        return None
    said = []
    for size, rows in by_train_size(run.all_strategies):
        ranked = confirmed_first(rows, run.mode)
        if not ranked or _num(ranked[0].get("confirm_mean")) is None:
            continue
        best, tied = ranked[0], [r["strategy"] for r in ranked[1:] if r.get("tied_with_best")]
        said.append(("" if size is None else f"Train size {size}: ")
                    + f"best confirmed {best['strategy']}, {test_metric(run.metric)} {confirmed_text(best)}"
                    + (f"; cannot be told apart from it: {', '.join(tied)}." if tied else "."))
    return " ".join(said)


def facts(run: Run) -> list[str]:
    """What the search figures show when the run has more than one search: confirm trials, several sizes."""
    sizes = sorted({s["train_size"] for s in run.all_strategies if s.get("train_size") is not None})
    confirm = sum(t.get("stage") == "confirm" for t in run.all_trials)
    out = []
    if confirm:
        out.append(f"{confirm} confirm trials (the top configurations retrained on fresh seeds, scored on test)")
    if len(sizes) > 1:
        out.append(f"train sizes {', '.join(map(str, sizes))}")
    if confirm or len(sizes) > 1:
        out.append("the search figures show the search trials" + (f" at train size {run.train_size}"
                                                                 if len(sizes) > 1 else "") + " only")
    return out


def _read(path: Path) -> list[dict]:
    from raytune_ft.results.tables import read_table

    return read_table(path)
