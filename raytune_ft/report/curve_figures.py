"""The report's figures on what a strategy gives for a budget and for a data size (matplotlib, drawn off-screen):
each `plot_*` gives (Figure, caption) or (None, a note saying why there is no figure), as in `figures.py`;
`trust.py` saves them and puts them in the page.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from raytune_ft.report.fmt import num

if TYPE_CHECKING:
    from raytune_ft.report.run import Run

# The data-size axis is logarithmic when the sizes span more than this factor
LOG_SPAN = 10


def plot_budget(run: Run, curves: list[dict]):
    """One train size's budget curves: expected best validation score after n trials (left) and after c compute
    seconds (right), per strategy, the band shaded."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    names = [n for n in run.colors if any(r["strategy"] == n and num(r.get("expected_best")) is not None
                                          for r in curves)]
    if not names:
        return None, "No budget curve has a point (no strategy has a scored search trial)."
    fig = Figure(figsize=(11, 4.4))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, x, label in ((axes[0], "trials", "search trials"),
                         (axes[1], "compute_seconds", "compute seconds (trials x mean wall seconds per trial)")):
        for name in names:
            rows = sorted((r for r in curves if r["strategy"] == name and num(r.get(x)) is not None
                           and num(r.get("expected_best")) is not None), key=lambda r: r[x])
            if not rows:
                continue
            xs = [r[x] for r in rows]
            step = {"drawstyle": "steps-post"} if x == "compute_seconds" else {"marker": "o", "markersize": 3}
            ax.plot(xs, [r["expected_best"] for r in rows], color=run.colors[name], linewidth=1.8, **step)
            banded = [r for r in rows if all(num(r.get(k)) is not None and math.isfinite(r[k])
                                             for k in ("band_low", "band_high"))]  # an unbounded metric's is not
            if banded:
                ax.fill_between([r[x] for r in banded], [r["band_low"] for r in banded],
                                [r["band_high"] for r in banded], color=run.colors[name], alpha=0.15, linewidth=0,
                                step="post" if x == "compute_seconds" else None)
        ax.set_xlabel(label)
    axes[0].xaxis.get_major_locator().set_params(integer=True)
    axes[0].set_ylabel(f"expected best validation {run.metric} ({run.better} is better)")
    axes[0].legend(handles=[Line2D([], [], color=run.colors[n], linewidth=2, label=n) for n in names], fontsize=8,
                   loc="best", framealpha=0.9)
    fig.tight_layout()
    methods = sorted({str(r["band_method"]) for r in curves if r.get("band_method")})
    caption = (f"The best validation {run.metric} a strategy's search can be expected to have found after n trials "
               "(Dodge et al. 2019), left, and after c compute seconds, right; the shaded band is a 95 % band"
               + (f" ({'; '.join(methods)})" if methods else "") + ". Where two curves cross, the better choice "
               "depends on the budget.")
    return fig, caption


def plot_data_size(run: Run, rows: list[dict]):
    """Score ± CI against train size per strategy (log axis when the sizes span more than LOG_SPAN times)."""
    from matplotlib.figure import Figure

    rows = [r for r in rows if num(r.get("score")) is not None and num(r.get("train_size")) is not None]
    if not rows:
        return None, "data_size.parquet has no scored row: no data-size figure."
    sizes = sorted({r["train_size"] for r in rows})
    fig = Figure(figsize=(9, 4.6))
    ax = fig.add_subplot()
    for name in [n for n in run.colors if any(r["strategy"] == n for r in rows)]:
        pts = sorted((r for r in rows if r["strategy"] == name), key=lambda r: r["train_size"])
        xs, ys = [r["train_size"] for r in pts], [r["score"] for r in pts]
        ax.plot(xs, ys, color=run.colors[name], marker="o", linewidth=1.8, label=name)
        ci = [r for r in pts if num(r.get("ci_low")) is not None and num(r.get("ci_high")) is not None]
        if ci:
            below, above = [r["score"] - r["ci_low"] for r in ci], [r["ci_high"] - r["score"] for r in ci]
            ax.errorbar([r["train_size"] for r in ci], [r["score"] for r in ci], yerr=[below, above], fmt="none",
                        ecolor=run.colors[name], capsize=3)
    log = sizes[-1] > LOG_SPAN * sizes[0]
    if log:
        ax.set_xscale("log")
    ax.set_xticks(sizes, [str(int(s)) for s in sizes])
    ax.minorticks_off()
    kinds = sorted({str(r["score_kind"]) for r in rows if r.get("score_kind")})
    ax.set_xlabel("training samples" + (" (log scale)" if log else ""))
    ax.set_ylabel(f"{' / '.join(kinds) or 'score'} ({run.better} is better)")
    ax.legend(fontsize=8, loc="best", framealpha=0.9)
    fig.tight_layout()
    caption = ("Each strategy's score at each train size (nested, stratified subsets of the training split), "
               "with its 95 % CI as whiskers where the score is confirmed over seeds"
               + (f"; the score is the {', '.join(kinds)}" if kinds else "") + ".")
    return fig, caption
