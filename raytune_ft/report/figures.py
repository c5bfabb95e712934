"""The report's figures of the search (matplotlib, drawn off-screen): each `plot_*` takes the run and gives
(Figure, caption), or (None, a note saying why there is no figure); report/page.py saves them as PNG and puts
them in the page. Colour means a strategy (report/run.py PALETTE); a trial's status is shown by greys,
hatches and marker shapes, never by a colour.
"""
from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from raytune_ft.layout import RunLayout
from raytune_ft.metric import sign
from raytune_ft.report.fmt import fmt, num

if TYPE_CHECKING:
    from raytune_ft.report.run import Run

# stopped_early: the scheduler cut the trial; stopped_patience: the trial ended itself (training.patience)
STATUS_STYLE = {  # bar styles: greys and hatches only (colours are the strategies')
    "completed": {"color": "#4d4d4d"},
    "stopped_early": {"color": "#b3b3b3"},
    "stopped_patience": {"facecolor": "#e6e6e6", "edgecolor": "#808080", "hatch": "///"},
    "error": {"facecolor": "white", "edgecolor": "black", "hatch": "xx"},
}
STATUS_LABELS = {"completed": "completed", "stopped_early": "stopped early (scheduler)",
                 "stopped_patience": "stopped by patience", "error": "failed"}
CURVES_PER_STRATEGY = 3
MPL_STYLE = {"text.parse_math": False, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
             "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 100, "hatch.linewidth": 0.6}


# ---------------------------------------------------------------- figures: each gives (Figure or None, caption or note)


def plot_scores(run: Run):
    from matplotlib.figure import Figure

    names = [s["strategy"] for s in run.strategies]
    by_name = {n: run.ranked([t for t in run.trials if t["strategy"] == n]) for n in names}
    failed = sum(t["status"] == "error" for t in run.trials)
    if not any(by_name.values()):
        return None, "No trial has a score (every trial failed): nothing to plot."
    fig = Figure(figsize=(9, 0.55 * len(names) + 1.4))
    ax = fig.add_subplot()
    for y, name in enumerate(names):
        trials = by_name[name]
        scores = [t["score"] for t in trials]
        if len(scores) > 1:
            ax.boxplot(scores, positions=[y], orientation="horizontal", widths=0.5, showfliers=False,
                       medianprops={"color": "#555"}, boxprops={"color": "#999"}, whiskerprops={"color": "#999"},
                       capprops={"color": "#999"})
        offsets = [0.0] if len(scores) == 1 else [0.18 * (2 * i / (len(scores) - 1) - 1) for i in range(len(scores))]
        for t, dy in zip(trials, offsets):
            filled = t["status"] == "completed"
            ax.scatter(t["score"], y + dy, s=40, zorder=3, edgecolors=run.colors[name], linewidths=1.5,
                       facecolors=run.colors[name] if filled else "white",
                       marker="s" if t["status"] == "stopped_patience" else "o")
        if not trials:
            ax.text(0.01, y, "every trial failed", transform=ax.get_yaxis_transform(), va="center", color="black")
    nfail = {n: sum(t["status"] == "error" for t in run.trials if t["strategy"] == n) for n in names}
    ax.set_yticks(range(len(names)), [f"{n}\n({len(by_name[n])} scored" + (f", {nfail[n]} failed)" if nfail[n] else ")")
                                      for n in names])
    ax.set_ylim(len(names) - 0.5, -0.5)  # best strategy on top
    ax.set_xlabel(f"best {run.metric} of the trial ({run.better} is better)")
    ax.grid(axis="y", visible=False)
    ax.scatter([], [], s=40, c="grey", label="completed")
    ax.scatter([], [], s=40, facecolors="white", edgecolors="grey", linewidths=1.5, label="stopped early (scheduler)")
    if any(t["status"] == "stopped_patience" for t in run.trials):
        ax.scatter([], [], s=40, marker="s", facecolors="white", edgecolors="grey", linewidths=1.5,
                   label="stopped by patience")
    ax.legend(loc="lower right" if sign(run.mode) > 0 else "lower left", fontsize=8, framealpha=0.9)
    caption = (f"One dot per trial at its best {run.metric} ({run.better} is better), boxes over each strategy's "
               "trials; filled = ran all epochs, hollow circle = stopped early by the scheduler, hollow square = "
               "ended by patience (no better score for training.patience epochs). "
               + (f"{failed} failed trial{'s' if failed != 1 else ''} not shown (counted under each name)."
                  if failed else "No trial failed."))
    return fig, caption


def plot_curves(run: Run):
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if run.epochs is None:
        return None, ("No learning curves: this run has no epochs.parquet (runs made before it was written "
                      "per epoch). The other sections do not need it.")
    if run.epochs and run.metric not in run.epochs[0]:
        return None, f"No learning curves: epochs.parquet has no column {run.metric}."
    fig = Figure(figsize=(9, 4.6))
    ax = fig.add_subplot()
    drawn = []
    for s in run.strategies:
        top = run.ranked([t for t in run.trials if t["strategy"] == s["strategy"]])[:CURVES_PER_STRATEGY]
        for rank, t in enumerate(top):
            pts = sorted((e["epoch"], e[run.metric]) for e in run.epochs
                         if e["trial_id"] == t["trial_id"] and num(e[run.metric]) is not None)
            if not pts:
                continue
            xs, ys = zip(*pts)
            ax.plot(xs, ys, color=run.colors[s["strategy"]], marker="o", markersize=3 if rank else 4,
                    linewidth=2.2 if rank == 0 else 1.0, alpha=1.0 if rank == 0 else 0.45, zorder=3 - rank)
            drawn.append(s["strategy"])
    if not drawn:
        return None, "No learning curves: epochs.parquet holds no epoch of a scored trial."
    ax.set_xlabel("epoch")
    ax.set_ylabel(run.metric)
    ax.xaxis.get_major_locator().set_params(integer=True)
    handles = [Line2D([], [], color=run.colors[n], linewidth=2, label=n) for n in dict.fromkeys(drawn)]
    ax.legend(handles=handles, fontsize=8, loc="best", framealpha=0.9)
    caption = (f"Validation {run.metric} after each epoch of the {CURVES_PER_STRATEGY} best trials of each strategy "
               f"({run.better} is better); thick line = the strategy's best trial, thin = the runners-up; "
               "a line that ends early is a trial the scheduler stopped, or one that ended by patience.")
    return fig, caption


def plot_rungs(run: Run):
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    names = [s["strategy"] for s in run.strategies]
    max_epochs = max([int(run.job.get("training", {}).get("epochs") or 0)]
                     + [int(t["epochs_run"] or 0) for t in run.trials])
    low = 0 if any(not t["epochs_run"] for t in run.trials) else 1
    xs = list(range(low, max(max_epochs, 1) + 1))
    cols = min(4, len(names))
    nrows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(2.8 * cols + 0.6, 2.3 * nrows + 0.6))
    axes = fig.subplots(nrows, cols, sharey=True, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        trials = [t for t in run.trials if t["strategy"] == name]
        bottom = [0] * len(xs)
        for status in ("stopped_early", "stopped_patience", "completed", "error"):
            counts = [sum(t["status"] == status and int(t["epochs_run"] or 0) == x for t in trials) for x in xs]
            ax.bar(xs, counts, bottom=bottom, width=0.7, **STATUS_STYLE[status])
            bottom = [b + c for b, c in zip(bottom, counts)]
        ax.set_title(name, fontsize=9, color=run.colors[name], fontweight="bold")
        ax.set_xticks(xs)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.grid(axis="x", visible=False)
    tallest = max(sum(t["strategy"] == n and int(t["epochs_run"] or 0) == x for t in run.trials)
                  for n in names for x in xs)
    axes[0].set_ylim(0, tallest + 0.5)  # shared by all panels: headroom above the tallest bar
    for ax in axes[len(names):]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel("trials")
    for ax in axes[(nrows - 1) * cols:]:
        ax.set_xlabel("epochs run")
    fig.legend(handles=[Patch(label=STATUS_LABELS[s], **STATUS_STYLE[s]) for s in STATUS_STYLE],
               loc="upper center", ncol=len(STATUS_STYLE), fontsize=8, frameon=False, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    stopped = sum(t["status"] == "stopped_early" for t in run.trials)
    patience = sum(t["status"] == "stopped_patience" for t in run.trials)
    caption = (f"For each strategy, how many trials ended after each number of epochs: light grey = stopped early "
               f"by the scheduler at that rung ({stopped} in all), hatched = ended by itself after "
               f"training.patience epochs without a better score ({patience} in all), dark grey = ran every epoch, "
               "crossed = failed.")
    return fig, caption


def plot_confusion(run: Run):
    from matplotlib.figure import Figure

    winner = run.winner
    path = RunLayout(run.dir).test_report(str(winner["strategy"])) if winner else None
    if path is None or not path.exists():
        return None, ("No test confusion matrix: the winning strategy has no reports/<strategy>/test_report.json "
                      "(the job has no test split, or its best trial kept no checkpoint).")
    report = json.loads(path.read_text())
    cm, classes = report["confusion_matrix"], [str(c) for c in report["classes"]]
    n = len(classes)
    side = min(12.0, max(4.5, 0.45 * n + 2.5))
    fig = Figure(figsize=(side + 1.2, side))
    ax = fig.add_subplot()
    share = [[v / max(1, sum(row)) for v in row] for row in cm]
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if n <= 25:
        for i in range(n):
            for j in range(n):
                if cm[i][j]:
                    ax.text(j, i, str(cm[i][j]), ha="center", va="center", fontsize=8,
                            color="white" if share[i][j] > 0.5 else "black")
    if n <= 60:
        ax.set_xticks(range(n), classes, rotation=45 if max(map(len, classes)) > 3 else 0, ha="right"
                      if max(map(len, classes)) > 3 else "center")
        ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.grid(False)
    ax.set_title(f"{winner['strategy']} (trial {report.get('trial_id')}): test accuracy "
                 f"{fmt(report.get('accuracy'))}, macro-F1 {fmt(report.get('f1'))}, {report.get('samples')} samples",
                 fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    caption = ("Rows are the true classes, columns the predicted ones; the numbers are test samples and the colour "
               "is each row's share, so a dark diagonal is good and an off-diagonal cell is a confusion.")
    return fig, caption
