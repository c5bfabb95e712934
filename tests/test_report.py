"""The HTML report on a run folder written like a sweep writes it (no Ray, no training)."""
from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess

import pytest
import yaml
from PIL import Image

from raytune_ft.results import evaluation as evaluate
from raytune_ft.hparams import HParams
from raytune_ft.report.cost import pareto
from raytune_ft.report.page import write_report
from raytune_ft.results.tables import epoch_rows, read_table, strategy_rows, trial_row, write_table

FIGURES = ("scores", "curves", "frontier", "rungs", "confusion")
SECTIONS = ("leaderboard", "scores", "curves", "frontier", "rungs", "configs", "confusion", "failures")
CLASSES = ["cat", "dog", "$5 bill"]  # a "$" that matplotlib must not read as maths
EVIL = "ValueError: loss is NaN <script>alert('x')</script> & more"
PARAMS = {"full": (3_400_000, 3_400_000), "feature_extraction": (12_800, 3_400_000), "lora": (100_000, 3_500_000),
          "ia3": (5_000, 3_400_000)}


def history(*accs, strategy="full"):
    trainable, total = PARAMS[strategy]
    return [{"epoch": i + 1, "train_loss": 1.2 - a, "val_loss": 1.0 - a, "val_accuracy": a, "val_f1": a - 0.01,
             "lr": 1e-3, "trainable_params": trainable, "total_params": total, "samples_per_sec": 80.0,
             "train_seconds": 3.0, "first_step_s": 4.0, "peak_memory_mb": 900.0, "checkpoint_path": "best"}
            for i, a in enumerate(accs)]


# (trial id, strategy, status, per-epoch val accuracy, knobs): 8 trials, 4 epochs at most
TRIALS = [
    ("t0", "full", "completed", (0.70, 0.85, 0.93, 0.97), {}),
    ("t1", "full", "stopped_early", (0.40,), {}),
    ("t2", "full", "stopped_early", (0.55, 0.60), {}),
    ("t3", "feature_extraction", "completed", (0.60, 0.72, 0.80, 0.84), {}),
    ("t4", "feature_extraction", "stopped_early", (0.50, 0.58), {}),
    ("t5", "lora", "completed", (0.30, 0.70, 0.88, 0.94), {"r": 8, "target_modules": ["q", "v"]}),
    ("t6", "lora", "stopped_early", (0.25,), {"r": 4, "target_modules": ["q", "v"]}),
    ("t7", "lora", "error", (0.2,), {"r": 16, "target_modules": ["q", "v"]}),
]


def make_run(path, trials=TRIALS, *, metric="val_accuracy", mode="max", with_epochs=True, with_test=True,
             monkeypatch=None):
    """trials / strategies / epochs Parquet and job.yaml, through results.py's own row builders; the winner's
    test_report.json through evaluate.py's own writer (the model evaluation itself replaced)."""
    path.mkdir(parents=True)
    rows, epochs = [], []
    for tid, name, status, accs, knobs in trials:
        h = history(*accs, strategy=name)
        strategy = {"name": name, **knobs, "hparams": {**HParams().model_dump(), "lr": 1e-3 * (1 + len(rows))}}
        error = f"Traceback (most recent call last):\n  File \"worker.py\"\n{EVIL}\n" if status == "error" else ""
        rows.append(trial_row(job="demo", run_id=path.name, trial_id=tid, strategy=strategy, status=status,
                              history=h, metric=metric, mode=mode,
                              wall_seconds=20.0 * len(accs), error=error))
        epochs += epoch_rows(run_id=path.name, trial_id=tid, strategy=name, status=status, history=h)
    write_table(rows, path / "trials.parquet")
    write_table(strategy_rows(rows, mode), path / "strategies.parquet")
    if with_epochs and epochs:
        write_table(epochs, path / "epochs.parquet")
    job = {"name": "demo", "model": {"source": "efficientnet_lite", "name": "efficientnet-lite0"},
           "data": {"source": "digits"}, "training": {"epochs": 4},
           "search": {"algorithm": "random", "num_samples": 3, "metric": metric, "mode": mode,
                      "scheduler": {"name": "asha"}}}
    (path / "job.yaml").write_text(yaml.safe_dump(job, sort_keys=False))
    if with_test:
        write_test_reports(path, monkeypatch)
    return path


def write_test_reports(run_dir, monkeypatch):
    """What driver.add_test_metrics does after a sweep, with a made-up confusion matrix instead of a model."""
    cm = [[18, 1, 1], [2, 17, 1], [0, 3, 17]]

    def fake_evaluate(trial_dir, data_dir, split="test"):
        return {"accuracy": 52 / 60, "f1": 0.866, "loss": 0.41, "samples": 60, "confusion_matrix": cm,
                "classes": CLASSES, "per_class": evaluate.per_class_report(cm, CLASSES)}

    monkeypatch.setattr(evaluate, "evaluate_trial", fake_evaluate)
    (run_dir / "data").mkdir()
    (run_dir / "data" / "test.pt").write_bytes(b"")
    table = read_table(run_dir / "strategies.parquet")
    reports = evaluate.evaluate_best_trials(run_dir, table, read_table(run_dir / "trials.parquet"), printer=print)
    for row in table:
        r = reports.get(row["strategy"], {})
        row.update(test_accuracy=r.get("accuracy"), test_f1=r.get("f1"), test_loss=r.get("loss"))
    write_table(table, run_dir / "strategies.parquet")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        run = make_run(tmp_path_factory.mktemp("runs") / "demo-1", monkeypatch=mp)
    return write_report(run)


def test_writes_page_and_figures(report):
    assert report.parent.name == "report" and (report.parent.parent / "trials.parquet").exists()
    for name in FIGURES:
        with Image.open(report.parent / f"{name}.png") as im:
            im.verify()
        with Image.open(report.parent / f"{name}.png") as im:
            assert im.format == "PNG" and 400 <= im.width <= 2000 and 250 <= im.height <= 2000, (name, im.size)
            assert len(im.convert("RGB").getcolors(1 << 20)) > 50, f"{name}.png looks empty"


def test_page_has_every_section_and_is_self_contained(report):
    page = text_of(report)
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in page
    assert page.count('class="caption"') == len(SECTIONS)
    for name in ("full", "feature_extraction", "lora", "t0", "t3", "t5"):
        assert name in page
    assert "Search only: the best trial was full&#x27;s, val_accuracy 0.9700" in page and "higher is better" in page
    assert "cannot tell strategies apart" in page and "add search.confirm" in page  # what a search cannot say
    assert "<script" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "Traceback" not in page  # the last line only
    assert "http://" not in page and "https://" not in page and "<link" not in page
    images = re.findall(r'<img src="([^"]+)"', report.read_text())
    assert len(images) == len(FIGURES)
    for src in images:
        assert src.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    assert "r=8" in page and "target_modules=" in page  # the best LoRA trial's own knobs
    assert "test acc" in page and "0.8667" in page


def text_of(page_path) -> str:
    """The page without its embedded images (base64 could spell anything)."""
    return re.sub(r'src="data:[^"]*"', 'src=""', page_path.read_text())


def test_a_strategy_whose_trials_all_failed(tmp_path, monkeypatch):
    trials = TRIALS + [("t8", "ia3", "error", (), {}), ("t9", "ia3", "error", (), {})]
    page = text_of(write_report(make_run(tmp_path / "run", trials, monkeypatch=monkeypatch)))
    assert "ia3" in page and "0 / 0 / 0 / 2" in page and page.count("t8") == 1
    assert (tmp_path / "run" / "report" / "scores.png").exists()


def test_every_trial_failed_gives_notes_not_figures(tmp_path):
    trials = [("a", "full", "error", (), {}), ("b", "lora", "error", (), {"r": 4})]
    page = write_report(make_run(tmp_path / "run", trials, with_test=False)).read_text()
    assert "every trial failed" in page and page.count("<img") == 1  # only where the trials ended
    for name in ("scores", "frontier", "confusion"):
        assert not (tmp_path / "run" / "report" / f"{name}.png").exists()
    assert (tmp_path / "run" / "report" / "rungs.png").exists()


def test_older_run_without_epochs_or_test_split(tmp_path):
    run = make_run(tmp_path / "run", with_epochs=False, with_test=False)
    page = write_report(run, tmp_path / "out").read_text()
    assert "no epochs.parquet" in page and "no reports/&lt;strategy&gt;/test_report.json" in page
    assert not (tmp_path / "out" / "curves.png").exists() and (tmp_path / "out" / "scores.png").exists()
    assert "test acc" not in page


def test_mode_min_ranks_the_lowest_loss_first(tmp_path, monkeypatch):
    page = write_report(make_run(tmp_path / "run", metric="val_loss", mode="min", monkeypatch=monkeypatch)).read_text()
    assert "the best trial was full&#x27;s, val_loss 0.0300" in page and "lower is better" in page
    assert (tmp_path / "run" / "reports" / "full" / "test_report.json").exists()
    assert (tmp_path / "run" / "report" / "confusion.png").exists()


def test_a_single_trial(tmp_path):
    page = write_report(make_run(tmp_path / "run", TRIALS[:1], with_test=False)).read_text()
    assert "the best trial was full&#x27;s" in page and "No trial failed." in page


def test_user_text_is_escaped_in_the_title_and_the_tables(tmp_path, monkeypatch):
    """The page is a jinja2 template with autoescape: a run folder's name and a strategy's name are text."""
    monkeypatch.setitem(PARAMS, "<b>lora</b>", PARAMS["lora"])
    trials = [("t0", "<b>lora</b>", "completed", (0.5, 0.6), {"r": 4}), ("t1", "full", "error", (), {})]
    page = text_of(write_report(make_run(tmp_path / "<i>run&'", trials, with_test=False)))
    assert "<b>" not in page and "<i>" not in page
    assert "<title>raytune-ft report: &lt;i&gt;run&amp;&#x27;</title>" in page
    assert '<span class="swatch" style="background:#1f77b4"></span>&lt;b&gt;lora&lt;/b&gt;</td>' in page


def test_no_run_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"trials\.parquet.*raytune-ft run"):
        write_report(tmp_path)


def test_pareto_front_in_both_directions():
    points = [(10, 0.9), (1, 0.8), (5, 0.7), (10, 0.95), (1, 0.8)]
    assert pareto(points, "max") == [False, True, False, True, True]
    assert pareto(points, "min") == [False, True, True, False, True]


def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if not binary:
        pytest.skip("no headless browser: install Debian's chromium (apt-get install chromium)")
    return binary


def test_report_renders_in_headless_chromium(report, tmp_path):
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=1280,4000"]
    shot = tmp_path / "page.png"
    subprocess.run(args + [f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=90, check=True)
    with Image.open(shot) as im:
        rgb = im.convert("RGB")
        assert rgb.size == (1280, 4000)
        assert len(rgb.getcolors(1 << 22)) > 1000, "the screenshot is (nearly) blank: did the figures load?"
        non_white = sum(n for n, c in rgb.getcolors(1 << 22) if sum(c) < 720)
        assert non_white > 0.05 * 1280 * 4000
    dom = subprocess.run(args + ["--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=90,
                         check=True).stdout
    assert dom.count("<img") == len(FIGURES) and dom.count('src="data:image/png;base64,') == len(FIGURES)
    assert "Leaderboard" in dom and "<script" not in dom


def test_the_cost_figure_shows_what_a_team_pays_not_only_trainable_weights(report):
    """Compute, memory and time per sample beside the share of weights trained, each panel with every
    strategy that recorded the cost (the issue: trainable parameters alone favour PEFT by construction)."""
    from raytune_ft.report.cost import COSTS, plot_frontier
    from raytune_ft.report.run import load_run

    run = load_run(report.parent.parent)
    fig, caption = plot_frontier(run)
    labels = [ax.get_xlabel() for ax in fig.axes]
    assert labels == [label for _, label, _ in COSTS]
    assert any("memory" in x for x in labels) and any("per sample" in x for x in labels)
    assert any("compute" in x for x in labels)
    scored = sum(s["best_score"] is not None for s in run.strategies)
    for ax in fig.axes:
        assert sum(len(c.get_offsets()) for c in ax.collections) == scored, ax.get_xlabel()
