"""A run's report: one self-contained HTML page (figures embedded, inline CSS) plus the figures as PNG.

    from raytune_ft.report.page import write_report
    write_report(Path("runs/quickstart-20260101-120000"))   # -> runs/.../report/report.html

Reads what a run folder holds (trials / strategies / epochs Parquet, job.yaml, the test reports) and
draws one figure per question: how the strategies rank, how their trials spread, how the best ones
learned, what quality costs, where trials ended (cut by the scheduler, or by patience), and the
search leader's test confusion matrix. With a confirm stage, budget curves or several train sizes, the
sections of report/trust.py say how far the ranking can be trusted; without them, the page says what a
search alone cannot support. Anything a run does not have (no epochs.parquet, no test split, a strategy
whose trials all failed) becomes a note in place of its figure. The page itself is the jinja2 template
`templates/report.html.j2`.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from raytune_ft.layout import RunLayout
from raytune_ft.report import trust
from raytune_ft.report.content import Row, Section, Table, figure_section
from raytune_ft.report.cost import plot_frontier
from raytune_ft.report.figures import MPL_STYLE, STATUS_LABELS, plot_confusion, plot_curves, plot_rungs, plot_scores
from raytune_ft.report.fmt import count, fmt, mean_std, megabytes, num, pct, value
from raytune_ft.report.leaderboard import search_only_note
from raytune_ft.report.plan import plan_sections
from raytune_ft.report.run import Run, load_run


def write_report(run_dir: Path, out_dir: Path | None = None) -> Path:
    """Write `report.html` and its figures (PNG) to out_dir (default RUN/report); return the page's path."""
    from matplotlib import rc_context

    run = load_run(run_dir)
    out_dir = Path(out_dir) if out_dir else RunLayout(run.dir).report_page
    out_dir.mkdir(parents=True, exist_ok=True)
    with rc_context(MPL_STYLE):
        sections = [
            trust.confirmed_leaderboard(run) or Section("leaderboard", "Leaderboard", "leaderboard",
                                                        *leaderboard_table(run)),
            *trust.trust_sections(run, out_dir),
            figure_section("scores", "Score distributions", "scores", plot_scores(run), out_dir),
            figure_section("curves", "Learning curves", "curves", plot_curves(run), out_dir),
            figure_section("frontier", "Cost and quality", "cost", plot_frontier(run), out_dir),
            figure_section("rungs", "Where trials ended", "rungs", plot_rungs(run), out_dir),
            Section("configs", "Best configuration of each strategy", "configs", *config_table(run)),
            figure_section("confusion", "Test confusion matrix of the search's best trial", "confusion",
                           plot_confusion(run), out_dir),
            Section("failures", "Failures", "failures", *failures_table(run)),
            *plan_sections(run),
            *trust.provenance_sections(run),
        ]
    path = out_dir / "report.html"
    path.write_text(render_page(run, sections), encoding="utf-8")
    return path


# ---------------------------------------------------------------- the page


def render_page(run: Run, sections: list[Section]) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    counts = {s: sum(t["status"] == s for t in run.trials) for s in STATUS_LABELS}
    model, data, search = run.job.get("model", {}), run.job.get("data", {}), run.job.get("search", {})
    facts = [f"{len(run.trials)} trials ({counts['completed']} completed, {counts['stopped_early']} stopped early by "
             f"the scheduler, {counts['stopped_patience']} stopped by patience, {counts['error']} failed)",
             f"metric {run.metric} ({run.better} is better)"]
    if model:
        facts.append(f"model {model.get('source')} {model.get('name')}")
    if data:
        facts.append(f"data {data.get('source')}")
    if search:
        facts.append(f"search {search.get('algorithm')} x {search.get('num_samples')} per strategy, "
                     f"scheduler {search.get('scheduler', {}).get('name')}, "
                     f"up to {run.job.get('training', {}).get('epochs')} epochs")
    if not run.job:
        facts.append("no job.yaml in the run folder: assuming higher scores are better")
    facts += trust.facts(run)
    headline = trust.headline(run)
    env = Environment(loader=PackageLoader("raytune_ft", "templates"), autoescape=True, finalize=_escape,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template("report.html.j2").render(title=f"raytune-ft report: {run.dir.name}", facts=facts,
                                                     headline=headline, sections=sections)


def _escape(value):
    """Autoescape as html.escape does (' as &#x27;, where jinja2 writes &#39;): the page's text as it always was."""
    from markupsafe import Markup

    return value if hasattr(value, "__html__") else Markup(html.escape(str(value), quote=True))


# ---------------------------------------------------------------- tables


def leaderboard_table(run: Run) -> tuple[str, Table | None]:
    """The search's strategy table (a run without a confirm stage), and what it can and cannot say."""
    has_test = any(num(s.get("test_accuracy")) is not None for s in run.strategies)
    header = ["strategy", f"best {run.metric}", "mean ± std over trials", "trials", "done / stopped / patience / failed",
              "trainable", "trainable params", "compute s", "peak memory (median)", "samples/s (median)"] \
        + (["test acc", "test F1"] if has_test else [])
    rows = []
    for s in run.strategies:
        row = [s["strategy"], fmt(s["best_score"]),
               mean_std(s["mean_score"], s["std_score"]), str(s["trials"]),
               f"{s['completed']} / {s['stopped_early']} / {num(s.get('stopped_patience')) or 0} / {s['errored']}",
               pct(s["trainable_fraction"]), count(s["trainable_params"]), fmt(s["compute_seconds"], ".0f"),
               megabytes(s.get("median_peak_memory_mb")), fmt(s.get("median_samples_per_sec"), ".1f")]
        if has_test:
            row += [fmt(s.get("test_accuracy")), fmt(s.get("test_f1"))]
        rows.append(Row(row, run.colors[s["strategy"]]))
    caption = (f"Strategies by their best trial's {run.metric} ({run.better} is better). {search_only_note(run.metric)} "
               "Done / stopped / patience / failed count its trials that ran every epoch, that the scheduler "
               "stopped early, that ended themselves after `patience` epochs without a better score, and that "
               "failed. Mean ± std is over the trials that did not fail, stopped ones at their best; trainable is "
               "the best trial's share of trainable weights; compute is the sum of all its trials' wall seconds; "
               "peak memory and samples/s are medians over its trials"
               + ("; test columns are the best trial re-evaluated on the test split (one seed)." if has_test
                  else "."))
    return caption, Table(header, rows, numeric=set(range(1, len(header))))


def config_table(run: Run) -> tuple[str, Table | None]:
    configs = [(s["strategy"], json.loads(s["best_config"])) for s in run.strategies if s.get("best_config")]
    if not configs:
        return "No strategy has a best trial, so there is no configuration to show.", None
    own = lambda name, key: key.startswith(f"{name}.")  # noqa: E731
    shared = list(dict.fromkeys(k for name, c in configs for k in c if "." not in k))
    header = ["strategy", "trial"] + shared + ["strategy knobs"]
    best_trial = {s["strategy"]: s["best_trial_id"] for s in run.strategies}
    rows = []
    for name, c in configs:
        knobs = ", ".join(f"{k.split('.', 1)[1]}={value(v)}" for k, v in c.items() if own(name, k) and v is not None)
        rows.append(Row([name, str(best_trial[name]), *[value(c.get(k)) for k in shared], knobs or "-"],
                        run.colors[name]))
    caption = ("The hyperparameters of each strategy's best trial, one row per strategy; "
               "the last column holds the strategy's own searched knobs (e.g. LoRA's rank).")
    return caption, Table(header, rows, numeric=set(range(2, 2 + len(shared))))


def failures_table(run: Run) -> tuple[str, Table | None]:
    trials = run.all_trials or run.trials  # every stage and train size: a failed confirm trial is a failure too
    failed = [t for t in trials if t["status"] == "error"]
    if not failed:
        return "No trial failed.", None
    rows = [Row([str(t["trial_id"]), str(t["strategy"]), str(t["epochs_run"] or 0), error_line(t)]) for t in failed]
    table = Table(["trial", "strategy", "epochs run", "error (last line)"], rows, numeric={2}, wrap={3})
    caption = (f"{len(failed)} of {len(trials)} trials failed; each with the last line of its error "
               "(the full text is in trials.parquet, column error).")
    return caption, table


def error_line(trial: dict) -> str:
    """The line that says what went wrong: the `error_reason` column when the run has it, else the last line."""
    if trial.get("error_reason"):
        return str(trial["error_reason"])
    lines = [ln.strip() for ln in str(trial.get("error") or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown error"
