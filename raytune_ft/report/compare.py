"""Two runs' strategies side by side (`raytune-ft compare A B`), as a Board of text cells that fits in 80
characters: one row per strategy (and train size) of either run, A's number, B's, and B − A.

Both runs confirmed: their confirmed test means (± std over the seeds) are compared. Otherwise their searches'
best validation scores, and the notes say what such a difference is: two optimistic numbers, not a test.
"""
from __future__ import annotations

from raytune_ft.metric import better
from raytune_ft.report.fmt import fmt, mean_std, seconds, signed, whole
from raytune_ft.report.leaderboard import Board, has_confirm
from raytune_ft.results.tables import metric_on_test, num


def compare_board(a_rows: list[dict], b_rows: list[dict], metric: str, mode: str) -> Board:
    """A's and B's strategies.parquet rows compared on `metric` (the same for both); rows by train size, then
    by A's order, strategies only B has last."""
    confirmed = has_confirm(a_rows) and has_confirm(b_rows)
    score = "confirm_mean" if confirmed else "best_score"
    a, b = ({(r["strategy"], r.get("train_size")): r for r in rows} for rows in (a_rows, b_rows))
    keys = list(dict.fromkeys([*a, *b]))
    keys.sort(key=lambda k: (k[1] is None, k[1] or 0))
    sizes = any(size is not None for _, size in keys)
    header = ["strategy"] + (["train\nsize"] if sizes else [])
    if confirmed:
        header += ["A confirmed\nmean ± std", "B confirmed\nmean ± std", "B − A", "seeds\nA / B"]
    else:
        header += ["A best", "B best", "B − A", "trials\nA / B", "compute s\nA / B"]
    rows = []
    for key in keys:
        ra, rb = a.get(key, {}), b.get(key, {})
        va, vb = num(ra.get(score)), num(rb.get(score))
        cells = [key[0]] + ([whole(key[1])] if sizes else [])
        if confirmed:
            cells += [mean_std(va, ra.get("confirm_std")), mean_std(vb, rb.get("confirm_std")),
                      signed(vb - va if va is not None and vb is not None else None),
                      f"{whole(ra.get('confirm_n'))} / {whole(rb.get('confirm_n'))}"]
        else:
            cells += [fmt(va), fmt(vb), signed(vb - va if va is not None and vb is not None else None),
                      f"{whole(ra.get('trials'))} / {whole(rb.get('trials'))}",
                      f"{seconds(ra.get('compute_seconds'))} / {seconds(rb.get('compute_seconds'))}"]
        rows.append(cells)
    what = f"confirmed {metric_on_test(metric)}" if confirmed else f"search: best {metric}"
    title = f"{what} ({'higher' if better(1.0, 0.0, mode) else 'lower'} is better), A vs B"
    return Board(None, title, header, rows, None, compare_notes(a_rows, b_rows, confirmed))


def compare_notes(a_rows: list[dict], b_rows: list[dict], confirmed: bool) -> list[str]:
    """What the numbers are, and what the two runs do not share."""
    notes = []
    if confirmed:
        notes.append("A, B: each run's confirmed test mean ± std over its seeds. B − A is the difference of the "
                     "two means, with no interval: the runs' seeds are not paired, and nothing here tests it.")
    else:
        notes.append("A, B: each strategy's best search trial on validation, one seed, chosen on that same split "
                     "(optimistic). B − A is the difference of two such numbers, not a test: it can be seed noise.")
        one = "A" if has_confirm(a_rows) else "B" if has_confirm(b_rows) else None
        if one:
            notes.append(f"Only {one} has confirmed test scores, so the runs are compared on their searches.")
    sizes = [sorted({r.get("train_size") for r in rows}, key=lambda z: (z is None, z or 0)) for rows in (a_rows, b_rows)]
    if sizes[0] != sizes[1]:
        said = [", ".join("the whole train split" if z is None else str(z) for z in s) for s in sizes]
        notes.append(f"Train sizes: A {said[0]}; B {said[1]}. Rows match on strategy and train size.")
    a, b = ({r["strategy"] for r in rows} for rows in (a_rows, b_rows))
    for name, only in (("A", a - b), ("B", b - a)):
        if only:
            notes.append(f"Only in {name}: {', '.join(sorted(only))} ('-' in the other run's column).")
    return notes
