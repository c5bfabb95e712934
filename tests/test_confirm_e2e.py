"""Search, then confirm, at two train sizes: the whole comparison on a real local Ray cluster (2 CPUs)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from raytune_ft.results.tables import read_table
from tests.conftest import text_spec

pytestmark = pytest.mark.ray


def test_search_select_then_confirm_with_two_train_sizes(tiny_bert, text_csvs, tmp_path):
    """top_k 2: each strategy's two best search configurations on a selection seed, the better one on validation
    confirmed on 2 other seeds, each drawing its own train / validation split (vary_data), validation capped to
    the train size."""
    del text_csvs["test"]  # no test split: the confirm stage holds one out of train, and says so
    spec = text_spec(tiny_bert, text_csvs, output_dir=str(tmp_path / "runs"))
    spec["data"].update(validation_fraction=None, train_sizes=[16, 1.0], test_fraction=0.25, cap_validation=True)
    spec["strategies"] = [{"name": "full"}, {"name": "feature_extraction"}]
    spec["search"] = {"num_samples": 2, "scheduler": {"name": "asha", "grace_period": 1},
                      "hparams": {"lr": {"loguniform": [1e-3, 1e-2]}, "batch_size": 8},
                      "confirm": {"top_k": 2, "selection_seeds": 1, "seeds": 2, "vary_data": True}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    run_dir = tmp_path / "runs" / "r"
    out = subprocess.run([sys.executable, "-m", "raytune_ft.cli", "run", str(path), "--run-dir", str(run_dir)],
                         capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Failed to fetch metrics" not in out.stderr  # in none of the three stages
    assert "held out from train: 16 samples" in out.stdout  # 64 rows, a quarter held out as test
    assert "x 2 train sizes (16, 48)" in out.stdout

    trials = read_table(run_dir / "trials.parquet")
    search = [t for t in trials if t["stage"] == "search"]
    select = [t for t in trials if t["stage"] == "select"]
    confirm = [t for t in trials if t["stage"] == "confirm"]
    assert len(search) == 8 and {t["train_size"] for t in search} == {16, 48}
    assert len(select) == 8 and all(t["test_score"] is None and t["epochs_run"] == 2 for t in select)
    assert len(confirm) == 8 and all(t["status"] == "completed" and t["epochs_run"] == 2 for t in confirm)
    assert not {t["seed"] for t in select} & {t["seed"] for t in confirm}  # the seeds that chose do not report
    for (name, size) in {(t["strategy"], t["train_size"]) for t in confirm}:
        mine = [t for t in confirm if (t["strategy"], t["train_size"]) == (name, size)]
        chosen = {t["source_trial_id"] for t in mine}
        assert len(chosen) == 1  # one configuration confirmed, the better of the two on validation
        means = {}
        for t in select:
            if (t["strategy"], t["train_size"]) == (name, size):
                means.setdefault(t["source_trial_id"], []).append(t["score"])
        mean = {s: sum(v) / len(v) for s, v in means.items()}
        assert mean[chosen.pop()] == max(mean.values())  # the best mean (of equals, the first candidate: ties are
        # common on 16 validation samples, and the trials table's order is not the candidates')
    assert all(t["data_seed"] == t["seed"] for t in select + confirm)  # vary_data
    assert all(t["val_samples"] <= t["train_size"] for t in trials)  # cap_validation
    assert all(t["test_score"] is not None and t["test_score"] == t["test_accuracy"] for t in confirm)
    assert all(t["test_score"] is None for t in search)
    seeds = {(t["strategy"], t["train_size"]): sorted(t["seed"] for t in confirm
                                                      if (t["strategy"], t["train_size"]) == (s, n))
             for s in ("full", "feature_extraction") for n in (16, 48) for t in confirm}
    assert len(set(map(tuple, seeds.values()))) == 1  # the same 2 seeds for every strategy and size: paired
    assert not set(seeds[("full", 16)]) & {t["seed"] for t in search}  # fresh seeds, not the search's
    for t in confirm:  # each repeats a search trial of its own strategy and size
        source = next(s for s in search if s["trial_id"] == t["source_trial_id"])
        assert (source["strategy"], source["train_size"], source["lr"]) == (t["strategy"], t["train_size"], t["lr"])

    table = read_table(run_dir / "strategies.parquet")
    assert [(r["train_size"], r["strategy"]) for r in table if r["train_size"] == 16] != []
    assert len(table) == 4 and all(r["confirm_n"] == 2 and r["ci_low"] <= r["confirm_mean"] <= r["ci_high"]
                                   for r in table)
    assert {r["confirm_covers"] for r in table} == {"seeds and data drawn (vary_data)"}
    assert {r["standing"] for r in table} == {"highest mean", "too few seeds"}  # 2 seeds: no claim
    assert all(r["trials"] == 2 for r in table)  # equal budgets: every strategy, every size
    pairs = read_table(run_dir / "comparisons.parquet")
    assert len(pairs) == 4 and {p["n"] for p in pairs} == {2}
    assert {(p["strategy_a"], p["train_size"]) for p in pairs} == {(s, n) for s in ("full", "feature_extraction")
                                                                    for n in (16, 48)}
    curves = read_table(run_dir / "budget_curves.parquet")
    assert {(c["strategy"], c["train_size"], c["trials"]) for c in curves} == {
        (s, n, k) for s in ("full", "feature_extraction") for n in (16, 48) for k in (1, 2)}
    sizes = read_table(run_dir / "data_size.parquet")
    assert len(sizes) == 4 and all(s["score_kind"] == "confirmed test_accuracy" for s in sizes)
    assert (run_dir / "provenance.json").exists()
