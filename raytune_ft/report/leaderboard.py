"""The confirmed leaderboard as text cells, for a rich table (`raytune-ft results`, the end of `run`) and the
report's HTML table alike, with the notes that say which number is which and what each label claims.

Two numbers per strategy, never mixed up:
  search     the best validation score of its search, chosen on that same split: optimistic;
  confirmed  the test score of the configuration chosen on validation, retrained on fresh seeds shared by all
             strategies: mean ± std, a 95 % interval over the seeds, and the strategy's standing against the
             best of the others (analysis/stats.py `versus_best`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby

from raytune_ft.metric import best_first
from raytune_ft.report.fmt import count, fmt, interval, mean_std, num, pct, seconds, signed_interval, whole
from raytune_ft.results.tables import metric_on_test

# what each standing (strategies.parquet) claims, in the words the leaderboard and the report use
CLAIMS = {
    "best": "better than every other strategy",
    "highest mean": "the highest mean, not told apart from every other",
    "not told apart": "not told apart from the best",
    "below": "worse than another strategy",
    "too few seeds": "no claim: too few seeds",
    "not confirmed": "no confirmed score",
}


def has_confirm(strategies: list[dict]) -> bool:
    """Whether strategies.parquet holds confirm-stage scores (runs without a confirm stage, and older runs, do not)."""
    return any(num(s.get("confirm_mean")) is not None for s in strategies)


def by_train_size(rows: list[dict]) -> list[tuple[int | None, list[dict]]]:
    """The rows per train size, smallest first; one group under None where the table has no train_size."""
    key = lambda r: (r.get("train_size") is None, r.get("train_size") or 0)  # noqa: E731
    return [(size, list(group)) for (_, size), group in groupby(sorted(rows, key=key), key=key)] if rows else []


def confirmed_first(rows: list[dict], mode: str) -> list[dict]:
    """Confirmed strategies best confirmed mean first; after them, those without a confirmed score (best search
    score first, those without any score last)."""
    confirmed = [r for r in rows if num(r.get("confirm_mean")) is not None]
    searched = [r for r in rows if r not in confirmed and num(r.get("best_score")) is not None]
    rest = [r for r in rows if r not in confirmed and r not in searched]
    return (best_first(confirmed, lambda r: r["confirm_mean"], mode)
            + best_first(searched, lambda r: r["best_score"], mode) + rest)


def standing(row: dict) -> str:
    """The row's standing (analysis/stats.py); '-' for a run made before standings were kept."""
    if num(row.get("confirm_mean")) is None:
        return "not confirmed"
    return row.get("standing") or "-"


def search_note(metric: str) -> str:
    return f"search: best validation {metric}, chosen on that same split — optimistic."


def confirmed_note(metric: str, rows: list[dict] = ()) -> str:
    """Which number the confirmed one is, and what its interval covers (the seed alone, or the data drawn too)."""
    varied = any("vary_data" in str(r.get("confirm_covers") or "") for r in rows)
    covers = ("the seeds' variation and which samples trained and validated (search.confirm.vary_data), on this one "
              "test split" if varied else "the seeds' variation on this one test split and training set, not "
              "another sample of data (search.confirm.vary_data: true draws the train / validation split per seed)")
    return (f"confirmed: {metric_on_test(metric)} of the configuration chosen on validation, retrained on fresh "
            f"seeds shared by all strategies; mean ± std and a 95 % interval (Student's t) over the seeds: they "
            f"cover {covers}.")


def standing_note(rows: list[dict]) -> str:
    """What the 'vs best' column claims, and how many seeds a claim needs in this table."""
    need = next((r.get("claim_seeds") for r in rows if num(r.get("claim_seeds")) is not None), None)
    seeds = max((int(r["confirm_n"]) for r in rows if num(r.get("confirm_n")) is not None), default=0)
    note = ("vs best: each strategy's mean minus the best mean of the others, with an interval read off pairwise "
            "intervals that hold for every pair at once (95 %); 'best' and 'below' are claims at that level, "
            "'not told apart' and 'highest mean' are not.")
    if need:
        note += (f" A claim needs at least {int(need)} seeds for {sum(1 for r in rows if num(r.get('confirm_mean')) is not None)}"
                 f" strategies (below that even a gap on every seed could be chance, without assuming normal "
                 f"scores); this table has {seeds}.")
    plans = [f"{r['strategy']} ~{int(r['seeds_needed'])}" for r in rows if num(r.get("seeds_needed")) is not None]
    if plans:
        note += " Seeds that would tell a strategy from the highest mean, if gap and spread stayed as seen: " \
                + ", ".join(plans) + "."
    return note


def confirmed_text(row: dict) -> str:
    """'0.9120 ± 0.0100, 95 % CI [0.9000, 0.9250], 5 seeds'"""
    return (f"{mean_std(row.get('confirm_mean'), row.get('confirm_std'))}, 95 % CI "
            f"{interval(row.get('ci_low'), row.get('ci_high'))}, {whole(row.get('confirm_n'))} seeds")


@dataclass
class Board:
    """One train size's leaderboard: cells as text, for a rich table (CLI) or an HTML one (report)."""
    train_size: int | None
    title: str
    header: list[str]  # with line breaks
    rows: list[list[str]]  # the first cell is the strategy's name
    best: str | None  # the strategy with the best confirmed mean
    notes: list[str] = field(default_factory=list)  # which number is which, what the labels claim


def boards(strategies: list[dict], trials: list[dict], metric: str, mode: str, *, wide: bool = False) -> list[Board]:
    """The confirmed leaderboard, one Board per train size, strategies by confirmed mean. The narrow board (the
    terminal: 80 characters) has the strategy, its standing, the confirmed mean ± std and interval and the search's
    best, its title naming the metric and the seeds (a seeds column where strategies had different numbers of
    them); wide (the report) has the seeds always, and adds the interval against the best, the trials and compute
    of both stages, and the share of trainable weights."""
    tm = metric_on_test(metric)
    confirm_trials: dict = {}
    for t in trials:
        if t.get("stage") == "confirm":
            key = (t["strategy"], t.get("train_size"))
            confirm_trials[key] = confirm_trials.get(key, 0) + 1
    out = []
    for size, rows in by_train_size(strategies):
        ranked = confirmed_first(rows, mode)
        best = ranked[0] if ranked and num(ranked[0].get("confirm_mean")) is not None else None
        seeds = {whole(r.get("confirm_n")) for r in ranked if num(r.get("confirm_mean")) is not None}
        one_count = not wide and len(seeds) == 1  # said once, in the title
        if wide:
            header = ["strategy", "vs best", f"confirmed {tm}\nmean ± std", "95 % CI", "seeds",
                      f"search\nbest {metric}", "it − best of others\n(all pairs, 95 %)", "trials:\nsearch / confirm",
                      "compute s:\nsearch / confirm", "trainable"]
        else:
            header = ["strategy", "vs best", "confirmed\nmean ± std", "95 % CI"] + ([] if one_count else ["seeds"]) \
                + ["search\nbest"]
        cells = []
        for r in ranked:
            row = [r["strategy"], standing(r), mean_std(r.get("confirm_mean"), r.get("confirm_std")),
                   interval(r.get("ci_low"), r.get("ci_high"))] + ([] if one_count else [whole(r.get("confirm_n"))]) \
                + [fmt(r.get("best_score"))]
            if wide:
                row += [signed_interval(r.get("vs_best_low"), r.get("vs_best_high")),
                        f"{whole(r.get('trials'))} / {whole(confirm_trials.get((r['strategy'], size)))}",
                        f"{fmt(r.get('compute_seconds'), '.0f')} / {fmt(r.get('confirm_compute_seconds'), '.0f')}",
                        pct(r.get("trainable_fraction"))]
            cells.append(row)
        title = f"strategies by confirmed {tm}" + ("" if size is None else f", train size {size}")
        title += f", {next(iter(seeds))} seeds" if one_count else ""
        out.append(Board(size, title, header, cells, best["strategy"] if best else None,
                         [search_note(metric), confirmed_note(metric, ranked), standing_note(ranked)]))
    return out


def search_board(strategies: list[dict], metric: str) -> Board:
    """A run without a confirm stage: its search's strategy table (80 characters: the title names the metric),
    and what it can and cannot say."""
    header = ["strategy", "best", "mean ± std\nover trials", "trials", "done / stopped /\npatience / failed",
              "compute\nseconds"]
    rows = [[r["strategy"], fmt(r.get("best_score")), mean_std(r.get("mean_score"), r.get("std_score")),
             whole(r.get("trials")),
             f"{whole(r.get('completed'))} / {whole(r.get('stopped_early'))} / {whole(r.get('stopped_patience') or 0)}"
             f" / {whole(r.get('errored'))}", seconds(r.get("compute_seconds"))]
            for r in strategies]
    best = next((r["strategy"] for r in strategies if num(r.get("best_score")) is not None), None)
    return Board(None, f"strategies by best {metric} (search only)", header, rows, best, [search_only_note(metric)])


def search_only_note(metric: str) -> str:
    return (f"Search only: each strategy's best {metric} is one trial of one seed, chosen on that same validation "
            "split (optimistic, and luckier the more trials a strategy had), and mean ± std spreads over different "
            "configurations, some stopped early. These numbers rank the search; they have no interval and cannot "
            "tell strategies apart. For confirmed test scores with intervals, add search.confirm: {top_k: 1, "
            "seeds: 7} to the job (raytune-ft validate says how many seeds a claim needs).")


def trainable_text(row: dict) -> str:
    return f"{pct(row.get('trainable_fraction'))} ({count(row.get('trainable_params'))})"
