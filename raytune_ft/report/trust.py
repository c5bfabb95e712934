"""The report's sections on how far its ranking can be trusted, each only where the run has its table: the
confirmed leaderboard (strategies.parquet's confirm columns), the pairs (comparisons.parquet), the budget
curves (budget_curves.parquet), data size (data_size.parquet) and provenance (provenance.json). The words come
from report/leaderboard.py and analysis/, the figures from report/curve_figures.py; report/page.py places them.
"""
from __future__ import annotations

import json
from pathlib import Path

from raytune_ft.analysis.budget import crossovers
from raytune_ft.analysis.data_size import size_sentences
from raytune_ft.analysis.stats import p_a_better_reading
from raytune_ft.layout import RunLayout
from raytune_ft.report.content import Part, Row, Section, Table, embedded, figure_section
from raytune_ft.report.curve_figures import plot_budget, plot_data_size
from raytune_ft.report.fmt import fmt, interval, num, p_text, signed, signed_interval, whole
from raytune_ft.report.leaderboard import boards, by_train_size, confirmed_first, confirmed_text, has_confirm
from raytune_ft.report.run import Run
from raytune_ft.results.tables import metric_on_test, read_table


def confirmed_leaderboard(run: Run) -> Section | None:
    """The leaderboard with search and confirmed scores side by side, one table per train size; None without a
    confirm stage (the report then shows the search's table, with what it cannot say)."""
    if not has_confirm(run.all_strategies):
        return None
    parts = []
    for b in boards(run.all_strategies, run.all_trials, run.metric, run.mode, wide=True):
        rows = [Row(cells, run.colors[cells[0]], win=cells[1] == "best") for cells in b.rows]
        table = Table([h.replace("\n", " ") for h in b.header], rows, numeric=set(range(2, len(b.header))))
        parts.append(Part("" if b.train_size is None else f"Train size {b.train_size}", table=table,
                          lines=b.notes[2:]))
    caption = (f"Two numbers per strategy. {b.notes[0]} {b.notes[1]} Strategies are ranked by the confirmed mean "
               f"({run.better} is better); a row is shaded only where it is told apart from every other. Trials "
               "and compute seconds of both stages show the budget each strategy had.")
    return Section("leaderboard", "Leaderboard", "leaderboard", caption, parts=parts)


def trust_sections(run: Run, out_dir: Path) -> list[Section]:
    """Pairwise comparisons, budget curves and data size: those whose table the run has."""
    layout = RunLayout(run.dir)
    out = []
    if layout.comparisons.exists():
        out.append(comparisons_section(run, read_table(layout.comparisons)))
    if layout.budget_curves.exists():
        out.append(budget_section(run, read_table(layout.budget_curves), out_dir))
    if layout.data_size.exists():
        out.append(data_size_section(run, read_table(layout.data_size), out_dir))
    return out


def comparisons_section(run: Run, comparisons: list[dict]) -> Section:
    parts = []
    for size, group in by_train_size(comparisons):
        ranked = confirmed_first([s for s in run.all_strategies if s.get("train_size") == size], run.mode)
        rank = {s["strategy"]: i for i, s in enumerate(ranked)}
        key = lambda name: (rank.get(name, len(rank)), name)  # noqa: E731
        pairs = sorted((c for c in group if key(c["strategy_a"]) < key(c["strategy_b"])),
                       key=lambda c: (key(c["strategy_a"]), key(c["strategy_b"])))
        metric = next((c["metric"] for c in pairs if c.get("metric")), metric_on_test(run.metric))
        header = ["A", "B", f"A − B: mean {metric}", "95 % CI (all pairs at once)", "told apart",
                  "P(A beats B on a fresh seed) [95 % CI]", "reading (Bouthillier et al.)", "p (t-test)",
                  "p (sign-flip, exact)", "seeds"]
        rows = [Row([c["strategy_a"], c["strategy_b"], signed(c.get("diff_mean")),
                     signed_interval(c.get("diff_ci_low"), c.get("diff_ci_high")),
                     "yes" if c.get("told_apart") else "no",
                     f"{fmt(c.get('p_a_better'), '.2f')} {interval(c.get('p_a_better_low'), c.get('p_a_better_high'), '.2f')}",
                     p_a_better_reading(num(c.get("p_a_better")), num(c.get("p_a_better_low"))),
                     p_text(c.get("p_value")), p_text(c.get("p_value_exact")), whole(c.get("n"))],
                    run.colors.get(c["strategy_a"])) for c in pairs]
        parts.append(Part("" if size is None else f"Train size {size}",
                          table=Table(header, rows, numeric={2, 3, 5, 7, 8, 9})))
    caption = ("Each pair of strategies once, A the higher ranked. A − B is the mean over the seeds both share of "
               "A's confirmed score minus B's; its interval is Student's t over the seeds, widened so that the "
               "intervals of every pair hold at once (Bonferroni), and a pair is told apart where it excludes 0 "
               "and the pair has the seeds a claim needs (see the leaderboard's note). P(A beats B) is the chance "
               "that A does better on a seed neither has seen (Bouthillier et al. 2021), with its exact interval: "
               "significant where the interval is above 0.5, meaningful where the estimate is also 0.75 or more. "
               "The p-values are for this pair alone: the paired t-test, and the sign-flip test, which assumes "
               "nothing about the differences' shape and cannot go below 2/2^seeds.")
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
            image = embedded(fig, out_dir / ("budget.png" if size is None else f"budget-{size}.png"))
        lines = [f"{label}: {' '.join(said)}" for label, x in (("By trials", "trials"),
                                                                 ("By compute seconds", "compute_seconds"))
                 if (said := crossovers(group, mode=run.mode, x=x))]
        lines += stopped_note(group)
        parts.append(Part("" if size is None else f"Train size {size}", "" if fig else text, image=image,
                          lines=lines))
    return Section("budget", "What each strategy gives for a budget", "budget",
                   caption or "No budget curve has a point.", parts=parts)


def stopped_note(curves: list[dict]) -> list[str]:
    """Under early stopping, what the curves are: a sentence naming how many draws were stopped."""
    draws = {r["strategy"]: (r.get("draws"), r.get("stopped_draws")) for r in curves}
    stopped = {s: d for s, d in draws.items() if num(d[1])}
    if not stopped:
        return []
    said = ", ".join(f"{s} {int(d[1])} of {int(d[0])}" for s, d in stopped.items())
    return [f"Early stopping: {said} draws were stopped before their last epoch and count with the score they had "
            "reached. So each curve is what a search of n trials under this scheduler finds, not what n fully "
            "trained configurations would reach; a strategy that starts slowly is drawn lower than it would finish."]


def data_size_section(run: Run, rows: list[dict], out_dir: Path) -> Section:
    sizes = sorted({r["train_size"] for r in rows if r.get("train_size") is not None})
    if len(sizes) < 2:
        (out_dir / "data_size.png").unlink(missing_ok=True)
        return Section("data_size", "Which strategy wins at which data size", "data size",
                       f"One train size only ({', '.join(map(str, sizes)) or 'unknown'} samples): set "
                       "data.train_sizes to see how the ranking moves with the amount of data.", note=True)
    section = figure_section("data_size", "Which strategy wins at which data size", "data size",
                             plot_data_size(run, rows), out_dir)
    section.parts = [Part("", lines=size_sentences(rows, mode=run.mode))]
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


def provenance_rows(provenance: dict) -> list[tuple[str, str]]:
    """provenance.json as (what, value) lines: nested entries flattened, hashes shortened to 12 characters;
    the resolved spec named, not copied (job.yaml has it too)."""
    out = []
    for key, value in provenance.items():
        if "spec" in str(key).lower():
            out.append((str(key), f"in provenance.json ({key})"))
        elif isinstance(value, dict):
            out.append((str(key), ", ".join(f"{k} {_short(v)}" for k, v in _flat(value)) or "-"))
        elif isinstance(value, list):
            out.append((str(key), ", ".join(_short(v) for v in value) or "-"))
        else:
            out.append((str(key), _short(value)))
    return out


def _flat(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _short(v) -> str:
    s = str(v)
    return s[:12] if len(s) >= 40 and all(c in "0123456789abcdef" for c in s.lower()) else s


def headline(run: Run) -> str:
    """The page's first sentence: what the run supports. With a confirm stage, per train size, the best
    confirmed strategy and whether it is told apart; without one, the search's leader and what it cannot say."""
    if not has_confirm(run.all_strategies):
        winner = run.winner
        if winner is None:
            return "No strategy has a score: every trial failed."
        return (f"Search only: the best trial was {winner['strategy']}'s, {run.metric} {fmt(winner['best_score'])} "
                "(one seed, chosen on this validation split). A search ranks; it cannot tell strategies apart: "
                "the leaderboard's caption says why, and how to add a confirm stage.")
    said = []
    for size, rows in by_train_size(run.all_strategies):
        ranked = confirmed_first(rows, run.mode)
        if not ranked or num(ranked[0].get("confirm_mean")) is None:
            continue
        top = ranked[0]
        where = "" if size is None else f"Train size {size}: "
        text = f"{top['strategy']}, {metric_on_test(run.metric)} {confirmed_text(top)}"
        if top.get("standing") == "best":
            said.append(f"{where}best confirmed {text}, told apart from every other strategy.")
        else:
            tied = [r["strategy"] for r in ranked[1:] if r.get("standing") in ("not told apart", "too few seeds")]
            said.append(f"{where}highest confirmed mean {text}; not told apart from "
                        f"{', '.join(tied) or 'the others'}.")
    return " ".join(said)


def facts(run: Run) -> list[str]:
    """What the search figures show when the run has more than one search (confirm trials, several sizes), and
    what each size validated on."""
    sizes = sorted({s["train_size"] for s in run.all_strategies if s.get("train_size") is not None})
    confirm = sum(t.get("stage") == "confirm" for t in run.all_trials)
    out = []
    validated = {}
    for t in run.all_trials:
        if num(t.get("val_samples")) is not None:
            validated.setdefault(t.get("train_size"), set()).add(int(t["val_samples"]))
    if validated:
        capped = run.job.get("data", {}).get("cap_validation")
        out.append("validation samples per trial: " + ", ".join(
            (f"{'-'.join(map(str, sorted({min(v), max(v)})))} at train size {size}" if size is not None
             else '-'.join(map(str, sorted({min(v), max(v)})))) for size, v in sorted(
                validated.items(), key=lambda kv: kv[0] or 0))
            + (" (data.cap_validation: no larger than the training set)" if capped else
               " (the whole validation split: data.cap_validation caps it to the training set)"))
    if confirm:
        out.append(f"{confirm} confirm trials (the top configurations retrained on fresh seeds, scored on test)")
    if len(sizes) > 1:
        out.append(f"train sizes {', '.join(map(str, sizes))}")
    if confirm or len(sizes) > 1:
        out.append("the search figures show the search trials" + (f" at train size {run.train_size}"
                                                                 if len(sizes) > 1 else "") + " only")
    return out
