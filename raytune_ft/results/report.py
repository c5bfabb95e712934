"""A run's report: one self-contained HTML page (figures embedded, inline CSS) plus the figures as PNG.

    from raytune_ft.results.report import write_report
    write_report(Path("runs/quickstart-20260101-120000"))   # -> runs/.../report/report.html

Reads what a run folder holds (trials / strategies / epochs Parquet, job.yaml, the test reports) and
draws one figure per question: how the strategies rank, how their trials spread, how the best ones
learned, what quality costs, where trials ended (cut by the scheduler, or by patience), and the
winner's test confusion matrix.
Anything a run does not have (no epochs.parquet, no test split, a strategy whose trials all failed)
becomes a note in place of its figure.
This module gathers the page's content (sections of tables and figures); the page itself is the jinja2
template `templates/report.html.j2`, the figures are drawn in `figures.py`.
"""
from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from raytune_ft.layout import RunLayout
from raytune_ft.metric import best_first, direction_word, mode_of
from raytune_ft.results.figures import (MPL_STYLE, STATUS_COLORS, _count, _fmt, _num, plot_confusion, plot_curves,
                                       plot_frontier, plot_rungs, plot_scores, save_png)
from raytune_ft.results.figures import pareto  # noqa: F401 (callers import it from here)

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


@dataclass
class Run:
    """What the report needs from a run folder; strategies best first, as strategies.parquet has them."""
    dir: Path
    trials: list[dict]
    strategies: list[dict]
    epochs: list[dict] | None
    job: dict
    metric: str
    mode: str
    # with a confirm stage or several train sizes, trials / strategies above are the search at the largest size
    # (what the search figures show); these are every row of the two tables
    all_trials: list[dict] = field(default_factory=list)
    all_strategies: list[dict] = field(default_factory=list)
    train_size: int | None = None

    @property
    def better(self) -> str:
        return direction_word(self.mode)

    @property
    def winner(self) -> dict | None:
        return next((s for s in self.strategies if _num(s["best_score"]) is not None), None)

    @cached_property
    def colors(self) -> dict[str, str]:
        names = dict.fromkeys(s["strategy"] for s in self.all_strategies or self.strategies)
        return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}

    def ranked(self, trials: list[dict]) -> list[dict]:
        """Scored trials (failed ones left out), best first."""
        scored = [t for t in trials if t["status"] != "error" and _num(t["score"]) is not None]
        return best_first(scored, lambda t: t["score"], self.mode)


def load_run(run_dir: Path) -> Run:
    from raytune_ft.results.tables import read_table

    layout = RunLayout(Path(run_dir))
    if not layout.trials.exists():
        raise FileNotFoundError(f"{layout.trials} not found: not a finished run folder "
                                "(run `raytune-ft run JOB.yaml` first)")
    all_trials = read_table(layout.trials)
    trials = [t for t in all_trials if t.get("stage") != "confirm"]
    job = _job(layout)
    search = job.get("search", {})
    metric = search.get("metric", "score")
    mode = search.get("mode") or mode_of(metric, "max")
    if layout.strategies.exists():
        all_strategies = read_table(layout.strategies)
    else:  # a run that crashed between the two writes: rebuild the summary
        from raytune_ft.results.tables import strategy_rows
        all_strategies = strategy_rows(trials, mode)
    size = max((s["train_size"] for s in all_strategies if s.get("train_size") is not None), default=None)
    strategies = [s for s in all_strategies if s.get("train_size") in (size, None)]
    trials = [t for t in trials if t.get("train_size") in (size, None)]
    epochs = read_table(layout.epochs) if layout.epochs.exists() else None
    return Run(layout.root, trials, strategies, epochs, job, metric, mode, all_trials, all_strategies, size)


def _job(layout: RunLayout) -> dict:
    import yaml

    return (yaml.safe_load(layout.job.read_text()) or {}) if layout.job.exists() else {}


def write_report(run_dir: Path, out_dir: Path | None = None) -> Path:
    """Write `report.html` and its figures (PNG) to out_dir (default RUN/report); return the page's path."""
    from matplotlib import rc_context

    from raytune_ft.results import trust_report as trust

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
            figure_section("confusion", "Test confusion matrix of the winner", "confusion", plot_confusion(run),
                           out_dir),
            Section("failures", "Failures", "failures", *failures_table(run)),
            *trust.provenance_sections(run),
        ]
    path = out_dir / "report.html"
    path.write_text(render_page(run, sections), encoding="utf-8")
    return path


# ---------------------------------------------------------------- the page's content, and the page


@dataclass
class Row:
    cells: list[str]  # plain text: the template escapes it
    color: str | None = None  # a swatch of the strategy's colour (as in the figures) before the first cell
    win: bool = False  # shaded: the winner's row


@dataclass
class Table:
    header: list[str]
    rows: list[Row]
    numeric: set[int] = field(default_factory=set)  # right-aligned columns (the first is always the row's name)
    wrap: set[int] = field(default_factory=set)  # monospace columns, wrapped anywhere (error texts)


@dataclass
class Part:
    """A titled piece of a section (one train size's table or figure), with sentences under it."""
    title: str
    caption: str = ""
    table: Table | None = None
    image: str | None = None
    lines: list[str] = field(default_factory=list)


@dataclass
class Section:
    anchor: str
    title: str
    nav: str  # its link at the top of the page
    caption: str  # what it shows; with note, why it has no figure
    table: Table | None = None
    image: str | None = None  # the figure, as a data: URI
    note: bool = False
    parts: list[Part] = field(default_factory=list)


def figure_section(anchor: str, title: str, nav: str, drawn: tuple, out_dir: Path) -> Section:
    """A figure saved as out_dir/<anchor>.png and embedded; or, when it could not be drawn, the note why."""
    fig, caption = drawn
    png = out_dir / f"{anchor}.png"
    if fig is None:
        png.unlink(missing_ok=True)  # no stale figure from an earlier report of this run
        return Section(anchor, title, nav, caption, note=True)
    src = "data:image/png;base64," + base64.b64encode(save_png(fig, png)).decode("ascii")
    return Section(anchor, title, nav, caption, image=src)


def render_page(run: Run, sections: list[Section]) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    from raytune_ft.results import trust_report as trust

    counts = {s: sum(t["status"] == s for t in run.trials) for s in STATUS_COLORS}
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
    winner = run.winner
    headline = trust.headline(run) or (f"Winner: {winner['strategy']} with best {run.metric} "
                                       f"{_fmt(winner['best_score'])}" if winner
                                       else "No strategy has a score: every trial failed.")
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
    has_test = any(_num(s.get("test_accuracy")) is not None for s in run.strategies)
    header = ["strategy", f"best {run.metric}", "mean ± std", "trials", "done / stopped / patience / failed",
              "trainable", "trainable params", "compute s"] + (["test acc", "test F1"] if has_test else [])
    rows = []
    for s in run.strategies:
        row = [s["strategy"], _fmt(s["best_score"]),
               _mean_std(s["mean_score"], s["std_score"]), str(s["trials"]),
               f"{s['completed']} / {s['stopped_early']} / {_num(s.get('stopped_patience')) or 0} / {s['errored']}",
               _pct(s["trainable_fraction"]),
               _count(s["trainable_params"]), _fmt(s["compute_seconds"], ".0f")]
        if has_test:
            row += [_fmt(s.get("test_accuracy")), _fmt(s.get("test_f1"))]
        rows.append(Row(row, run.colors[s["strategy"]], win=s is run.winner))
    caption = (f"Strategies ranked by their best trial's {run.metric} ({run.better} is better; the winner is "
               "shaded). Done / stopped / patience / failed count its trials that ran every epoch, that the "
               "scheduler stopped early, that ended themselves after `patience` epochs without a better score, "
               "and that failed. Mean ± std is over the trials that did not fail, stopped ones at their best; "
               "trainable is the best trial's share of trainable weights; compute is the sum of all its trials' "
               "wall seconds" + ("; test columns are the best trial re-evaluated on the test split." if has_test
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
        knobs = ", ".join(f"{k.split('.', 1)[1]}={_value(v)}" for k, v in c.items() if own(name, k) and v is not None)
        rows.append(Row([name, str(best_trial[name]), *[_value(c.get(k)) for k in shared], knobs or "-"],
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


# ---------------------------------------------------------------- formatting


def _mean_std(mean, std) -> str:
    return "-" if _num(mean) is None else f"{mean:.4f} ± {_fmt(std)}"


def _pct(v) -> str:
    return "-" if _num(v) is None else f"{v:.2%}"


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "-" if v is None else str(v)
