"""How the ranking moves with the amount of training data: data_size.parquet's rows and the sentences under
its figure, from strategies.parquet (one row per strategy and train size).

Scores of one kind only. A run with a confirm stage compares confirmed test scores (mean over seeds, with
the interval and the standing of analysis/confirm.py); a strategy whose confirm runs all failed at a size
has no point there, never its search's validation score in place of a test score. A run without a confirm
stage has only the search's best validation scores: one trial per configuration, chosen on that same split,
no interval. They are drawn, and the sentences say they cannot tell strategies apart.
"""
from __future__ import annotations

from itertools import groupby

from raytune_ft.metric import best_first
from raytune_ft.results.tables import num


def has_confirm(strategies: list[dict]) -> bool:
    """Whether strategies.parquet holds confirm-stage scores (runs without a confirm stage, and older runs, do
    not)."""
    return any(num(s.get("confirm_mean")) is not None for s in strategies)


def data_size_rows(strategies: list[dict], test_metric: str, metric: str) -> list[dict]:
    """One row per strategy and train size: score, ci_low, ci_high, n, standing, score_kind."""
    confirmed = has_confirm(strategies)
    out = []
    for r in strategies:
        if confirmed:
            score, kind = r.get("confirm_mean"), f"confirmed {test_metric}"
            if num(score) is None:
                kind = "not confirmed"
        else:
            score, kind = r.get("best_score"), f"search best {metric}"
        out.append({
            "strategy": r["strategy"], "train_size": r.get("train_size"), "score": num(score),
            "ci_low": r.get("ci_low") if confirmed else None, "ci_high": r.get("ci_high") if confirmed else None,
            "n": r.get("confirm_n") if confirmed else None, "standing": r.get("standing") if confirmed else None,
            "score_kind": kind,
        })
    return sorted(out, key=lambda r: (r["strategy"], r["train_size"] or 0))


def size_sentences(rows: list[dict], *, mode: str) -> list[str]:
    """What the data-size figure supports, one sentence per train size (a run with a confirm stage), or one
    sentence saying why it supports no comparison (a search-only run)."""
    if not any(num(r.get("score")) is not None for r in rows):
        return []
    if not any(str(r.get("score_kind", "")).startswith("confirmed") for r in rows):
        return ["No confirm stage: each point is a strategy's best validation score from its search (one seed per "
                "configuration, chosen on that same split), with no interval. The points rank the strategies at "
                "each size but cannot tell them apart; set search.confirm to compare them with intervals."]
    out = []
    key = lambda r: r.get("train_size") or 0  # noqa: E731
    for size, group in groupby(sorted(rows, key=key), key=key):
        group = list(group)
        scored = best_first([r for r in group if num(r.get("score")) is not None], lambda r: r["score"], mode)
        missing = [r["strategy"] for r in group if num(r.get("score")) is None]
        if scored:
            out.append(f"With {size} samples: " + _verdict(scored)
                       + (f" No confirmed score: {', '.join(missing)}." if missing else ""))
    return out


def _verdict(ranked: list[dict]) -> str:
    top, rest = ranked[0], ranked[1:]
    below = [r["strategy"] for r in rest if r.get("standing") == "below"]
    apart = [r["strategy"] for r in rest if r.get("standing") == "not told apart"]
    if top.get("standing") == "best":
        return f"{top['strategy']} is the best, told apart from every other confirmed one (95 %, all pairs at once)."
    if any(r.get("standing") == "too few seeds" for r in rest):
        return (f"{top['strategy']} has the highest mean; {_int(top.get('n'))} seeds are too few to tell strategies "
                "apart (see the leaderboard for how many a claim needs).")
    said = f"{top['strategy']} has the highest mean, not told apart from {', '.join(apart) or 'the others'}"
    return said + (f"; below it: {', '.join(below)}." if below else ".")


def _int(v) -> str:
    return "?" if num(v) is None else str(int(v))
