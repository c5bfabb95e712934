"""What quality costs: each strategy's best search score against what a team pays for it — compute, memory,
time per training sample — and the share of weights it trains (the axis parameter-efficient methods win by
construction, so never alone). Pareto-optimal strategies are marked: no other is both cheaper and better."""
from __future__ import annotations

from typing import TYPE_CHECKING

from raytune_ft.metric import at_least_as_good, better, sign
from raytune_ft.report.fmt import count, num

if TYPE_CHECKING:
    from raytune_ft.report.run import Run

# (column of strategies.parquet, axis label, log scale, how a value is shown on the axis)
COSTS = [
    ("compute_seconds", "compute: wall seconds of all its search trials", False),
    ("median_peak_memory_mb", "peak memory per worker, MB (median over its trials)", False),
    ("ms_per_sample", "training time per sample, ms (median over its trials)", False),
    ("trainable_params", "trainable parameters of its best trial (log scale)", True),
]


def pareto(points: list[tuple[float, float]], mode: str) -> list[bool]:
    """For (cost, score) points: True where no other point costs no more and scores at least as well,
    being strictly better at one of the two."""
    def dominates(a, b):
        return a[0] <= b[0] and at_least_as_good(a[1], b[1], mode) and (a[0] < b[0] or better(a[1], b[1], mode))

    return [not any(dominates(q, p) for q in points if q is not p) for p in points]


def cost_of(row: dict, column: str):
    if column == "ms_per_sample":
        rate = num(row.get("median_samples_per_sec"))
        return 1000.0 / rate if rate else None
    return num(row.get(column))


def plot_frontier(run: Run):
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    scored = [s for s in run.strategies if num(s["best_score"]) is not None]
    if not scored:
        return None, "No strategy has a score (every trial failed): no cost/quality frontier."
    fig = Figure(figsize=(11, 8.4))
    axes = fig.subplots(2, 2, sharey=True).ravel()
    for ax, (column, label, log) in zip(axes, COSTS):
        rows = [s for s in scored if cost_of(s, column) is not None and (not log or cost_of(s, column) > 0)]
        if not rows:
            ax.text(0.5, 0.5, f"no {column} recorded (a run made before it was)", transform=ax.transAxes,
                    ha="center")
            ax.set_xlabel(label)
            continue
        points = [(float(cost_of(s, column)), float(s["best_score"])) for s in rows]
        optimal = pareto(points, run.mode)
        front = sorted(p for p, o in zip(points, optimal) if o)
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="#444", linewidth=1,
                linestyle="--", zorder=1)
        for s, (x, y), opt in zip(rows, points, optimal):
            ax.scatter(x, y, s=90 if opt else 45, color=run.colors[s["strategy"]], zorder=3,
                       edgecolors="black" if opt else "none", linewidths=1.5, marker="D" if opt else "o")
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: count(v, "g").replace(" ", "")))
        ax.set_xlabel(label)
        ax.margins(x=0.15, y=0.12)
        place_labels(ax, [(x, y, s["strategy"], run.colors[s["strategy"]]) for s, (x, y) in zip(rows, points)])
    for ax in axes[::2]:
        ax.set_ylabel(f"best {run.metric} ({run.better} is better)" + ("" if sign(run.mode) > 0 else "; flipped"))
    if sign(run.mode) < 0:
        axes[0].invert_yaxis()  # better is up in both modes (shared), so the frontier always runs to the top left
    axes[0].scatter([], [], s=90, marker="D", c="lightgrey", edgecolors="black", linewidths=1.5,
                    label="Pareto-optimal")
    axes[0].scatter([], [], s=45, c="lightgrey", label="dominated")
    axes[0].legend(fontsize=8, loc="best", framealpha=0.9)
    fig.tight_layout()
    caption = ("Each strategy's best search score against what it cost: the compute its whole search used, the "
               "peak memory of a worker and the training time per sample (medians over its trials: what a team "
               "pays per trial), and the trainable weights of its best trial. Diamonds joined by the dashed line "
               "are Pareto-optimal on that axis (no other strategy is both cheaper and better); round dots are "
               "dominated. The scores are the search's (one seed each), not confirmed ones.")
    return fig, caption


def place_labels(ax, points: list[tuple[float, float, str, str]]) -> None:
    """Name each point next to it, moving a name to the next free spot when it would cover one already placed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(ax.figure).get_renderer()
    ax.autoscale_view()
    offsets = [(6, 4), (6, -12), (-6, 4), (-6, -12)] + [(6, 4 + 11 * k * side) for k in range(2, 8) for side in (-1, 1)]
    placed = []
    for x, y, text, color in points:
        for dx, dy in offsets:
            label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=8,
                                ha="left" if dx > 0 else "right", color=color)
            box = label.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(b) for b in placed):
                break
            label.remove()
        else:  # nowhere free: leave it at the first spot
            label = ax.annotate(text, (x, y), xytext=offsets[0], textcoords="offset points", fontsize=8,
                                color=color)
            box = label.get_window_extent(renderer)
        placed.append(box)
