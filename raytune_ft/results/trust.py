"""What the confirm stage, the budget curves and the data-size runs say, as ordered rows and sentences: the one
place the leaderboard (`raytune-ft results`, after `run`) and the report (`trust_report.py`) take them from.

The tables are the ones /work/notes/trust-contract.md fixes (strategies.parquet's confirm columns,
comparisons / budget_curves / data_size.parquet, provenance.json); every function takes their rows as dicts.
Two numbers per strategy, never mixed up:
  search     the best validation score of its search, chosen on that same split: optimistic;
  confirmed  the test score of the configuration chosen on validation, retrained on fresh seeds shared by all
             strategies: mean ± std, a 95 % CI over the seeds (bootstrap-t; Student's t below 5 seeds), and whether it can be told apart
             from the best (`tied_with_best`: Holm-corrected paired test).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby

from raytune_ft.metric import best as metric_best
from raytune_ft.metric import best_first
from raytune_ft.results.figures import _fmt, _num
from raytune_ft.results.report import _mean_std as mean_std
from raytune_ft.results.report import _pct


def has_confirm(strategies: list[dict]) -> bool:
    """Whether strategies.parquet holds confirm-stage scores (runs without a confirm stage, and older runs, do not)."""
    return any(_num(s.get("confirm_mean")) is not None for s in strategies)


def by_train_size(rows: list[dict]) -> list[tuple[int | None, list[dict]]]:
    """The rows per train size, smallest first; one group under None where the table has no train_size."""
    key = lambda r: (r.get("train_size") is None, r.get("train_size") or 0)  # noqa: E731
    return [(size, list(group)) for (_, size), group in groupby(sorted(rows, key=key), key=key)] if rows else []


def confirmed_first(rows: list[dict], mode: str) -> list[dict]:
    """Confirmed strategies best confirmed mean first; after them, those without a confirmed score (best search
    score first, those without any score last)."""
    confirmed = [r for r in rows if _num(r.get("confirm_mean")) is not None]
    searched = [r for r in rows if r not in confirmed and _num(r.get("best_score")) is not None]
    rest = [r for r in rows if r not in confirmed and r not in searched]
    return (best_first(confirmed, lambda r: r["confirm_mean"], mode)
            + best_first(searched, lambda r: r["best_score"], mode) + rest)


def test_metric(metric: str) -> str:
    """The test counterpart of a validation metric: val_accuracy -> test_accuracy."""
    return "test_" + metric[len("val_"):] if metric.startswith("val_") else f"test {metric}"


def standing(row: dict, best: dict) -> str:
    """'best', '≈ best' (cannot be told apart from it), 'below' or 'not confirmed'."""
    if _num(row.get("confirm_mean")) is None:
        return "not confirmed"
    if row is best:
        return "best"
    return "≈ best" if row.get("tied_with_best") else "below"


def tie_footnote(seeds) -> str:
    return (f"≈ best: cannot be told apart from the best on {_int(seeds)} seeds (Holm-corrected paired test, "
            "p ≥ 0.05).")


def search_note(metric: str) -> str:
    return f"search: best validation {metric}, chosen on that same split — optimistic."


def confirmed_note(metric: str) -> str:
    return (f"confirmed: {test_metric(metric)} of the configuration chosen on validation, retrained on fresh seeds "
            "shared by all strategies; mean ± std over the seeds, 95 % CI over the seeds (bootstrap-t; Student's t below 5 seeds).")


def confirmed_text(row: dict) -> str:
    """'0.9120 ± 0.0100, 95 % CI [0.9000, 0.9250], 5 seeds'"""
    return (f"{mean_std(row.get('confirm_mean'), row.get('confirm_std'))}, 95 % CI "
            f"{interval(row.get('ci_low'), row.get('ci_high'))}, {_int(row.get('confirm_n'))} seeds")


# ---------------------------------------------------------------- the confirmed leaderboard, as text cells


@dataclass
class Board:
    """One train size's leaderboard: cells as text, for a rich table (CLI) or an HTML one (report)."""
    train_size: int | None
    title: str
    header: list[str]  # with line breaks
    rows: list[list[str]]  # the first cell is the strategy's name
    best: str | None  # the strategy with the best confirmed mean
    notes: list[str] = field(default_factory=list)  # which number is which
    footnote: str | None = None  # what '≈ best' means, where a row has it


def boards(strategies: list[dict], trials: list[dict], metric: str, mode: str, *, wide: bool = False) -> list[Board]:
    """The confirmed leaderboard, one Board per train size, strategies by confirmed mean; each row has both the
    search score and the confirmed test score, the trials and compute seconds of both stages (wide: and the
    share of trainable weights, for the report's wider table)."""
    tm = test_metric(metric)
    confirm_trials = {}
    for t in trials:
        if t.get("stage") == "confirm":
            key = (t["strategy"], t.get("train_size"))
            confirm_trials[key] = confirm_trials.get(key, 0) + 1
    # line breaks where a narrow terminal table breaks its headers (HTML shows them as spaces)
    header = ["strategy", "vs\nbest", f"confirmed\n{tm}:\nmean ± std", "95 % CI", "seeds", f"search:\nbest\n{metric}",
              "trials:\nsearch /\nconfirm", "compute s:\nsearch /\nconfirm"] + (["trainable"] if wide else [])
    out = []
    for size, rows in by_train_size(strategies):
        ranked = confirmed_first(rows, mode)
        best = ranked[0] if ranked and _num(ranked[0].get("confirm_mean")) is not None else None
        cells = [[r["strategy"], standing(r, best), mean_std(r.get("confirm_mean"), r.get("confirm_std")),
                  interval(r.get("ci_low"), r.get("ci_high")), _int(r.get("confirm_n")), _fmt(r.get("best_score")),
                  f"{_int(r.get('trials'))} / {_int(confirm_trials.get((r['strategy'], size)))}",
                  f"{_fmt(r.get('compute_seconds'), '.0f')} / {_fmt(r.get('confirm_compute_seconds'), '.0f')}"]
                 + ([_pct(r.get("trainable_fraction"))] if wide else []) for r in ranked]
        tied = best is not None and any(c[1] == "≈ best" for c in cells)
        title = f"strategies by confirmed {tm}" + ("" if size is None else f", train size {size}")
        out.append(Board(size, title, header, cells, best["strategy"] if best else None,
                         [search_note(metric), confirmed_note(metric)],
                         tie_footnote(best.get("confirm_n")) if tied else None))
    return out


# ---------------------------------------------------------------- where the data-size curves cross: sentences
# (the budget curves' crossings: results/budget.py, crossovers)


def size_crossovers(data_size: list[dict], *, mode: str) -> list[str]:
    """Sentences naming the train sizes where the leader of data_size.parquet changes:
    "With 50 samples, feature_extraction leads." "From 200 samples on, full leads." """
    return _sentences(_leaders(_points(data_size, "train_size", "score"), mode), "train_size")


def _points(rows: list[dict], x: str, y: str) -> dict[str, list[tuple[float, float]]]:
    points: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if _num(r.get(x)) is not None and _num(r.get(y)) is not None:
            points.setdefault(r["strategy"], []).append((float(r[x]), float(r[y])))
    return {name: sorted(p) for name, p in points.items()}


def _leaders(points: dict[str, list[tuple[float, float]]], mode: str) -> list[tuple[float, str]]:
    """The leading strategy at every x where some strategy has a point (the first of equals), among the
    strategies with a point at exactly that x."""
    out = []
    for at in sorted({px for p in points.values() for px, _ in p}):
        scores = [(name, y) for name in points for px, y in points[name] if px == at]
        out.append((at, metric_best(scores, lambda s: s[1], mode)[0]))
    return out


UNITS = {"trials": ("trial", "trials"), "train_size": ("sample", "samples"), "compute_seconds": ("s", "s")}


def _sentences(leaders: list[tuple[float, str]], x: str) -> list[str]:
    segments = [(name, [at for at, _ in group]) for name, group in groupby(leaders, key=lambda p: p[1])]
    if not segments:
        return []
    one, many = UNITS.get(x, ("", ""))
    num = lambda v: f"{v:.0f}" if x == "compute_seconds" else f"{v:g}"  # noqa: E731
    span = lambda a, b: (f"{num(a)} {one if a == b == 1 else many}" if a == b  # noqa: E731
                         else f"{num(a)}–{num(b)} {many}")
    if len(segments) == 1:
        name, xs = segments[0]
        return [f"{name} leads everywhere ({span(xs[0], xs[-1])}): the curves do not cross."]
    out = []
    for i, (name, xs) in enumerate(segments):
        if i == 0:
            out.append(f"With {span(xs[0], xs[-1])}, {name} leads.")
        elif i == len(segments) - 1:
            out.append(f"From {num(xs[0])} {many} on, {name} leads.")
        elif xs[0] == xs[-1]:
            out.append(f"At {span(xs[0], xs[0])}, {name} leads.")
        else:
            out.append(f"From {num(xs[0])} to {num(xs[-1])} {many}, {name} leads.")
    return out


# ---------------------------------------------------------------- provenance


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


# ---------------------------------------------------------------- formatting


def _int(v) -> str:
    return "-" if _num(v) is None else str(int(v))


def interval(low, high) -> str:
    return "-" if _num(low) is None or _num(high) is None else f"[{low:.4f}, {high:.4f}]"


def signed(v) -> str:
    return "-" if _num(v) is None else f"{v:+.4f}"


def p_text(p) -> str:
    return "-" if _num(p) is None else "< 0.001" if p < 0.001 else f"{p:.3f}"
