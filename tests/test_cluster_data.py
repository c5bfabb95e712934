"""Data on the cluster (issue 13 §2): data paths may be bucket URIs (read through pyarrow's filesystems)
or paths only the cluster has. `submit` checks what it can from here and notes the rest; the job's
pre-flight on the cluster checks the rest and fails with exit 2 naming the field. `submit` waits for
a head that has just started. The bucket is moto's S3 server on 127.0.0.1 (as in test_s3_storage.py).
"""
from __future__ import annotations

import io
import os
import socket
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from raytune_ft.cli import app
from raytune_ft.cluster import client as cluster_client
from raytune_ft.errors import ClusterError, SpecError
from raytune_ft.spec import load_job, parse_job
from tests.conftest import ROOT, sentiment_rows, text_spec
from tests.cluster_fixture import BUCKET, MotoS3

TRAIN, VALIDATION = f"s3://{BUCKET}/data/train.csv", f"s3://{BUCKET}/data/validation.csv"


@pytest.fixture(scope="module")
def s3(tmp_path_factory, monkeypatch_module):
    """moto's S3 on 127.0.0.1, this process pointed at it; the sentiment CSVs (and a Parquet copy) in it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    moto = MotoS3(tmp_path_factory.mktemp("moto"))
    for k, v in moto.env.items():
        monkeypatch_module.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch_module.delenv(k, raising=False)
    try:
        moto.start()
        for split, n, seed in (("train", 64, 0), ("validation", 32, 1)):
            rows = sentiment_rows(n, seed)
            moto.client().put_object(Bucket=BUCKET, Key=f"data/{split}.csv",
                                     Body="text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
            buf = io.BytesIO()
            pq.write_table(pa.table({"text": [t for t, _ in rows], "label": [lab for _, lab in rows]}), buf)
            moto.client().put_object(Bucket=BUCKET, Key=f"data/{split}.parquet", Body=buf.getvalue())
        yield moto
    finally:
        moto.stop()


def _model(tmp_path):
    """A folder that passes the text model's checks (config.json); nothing here builds the model."""
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "config.json").write_text('{"model_type": "bert"}')
    return tmp_path / "model"


def _spec(tmp_path, **data) -> dict:
    spec = text_spec(_model(tmp_path), {}, strategies=[{"name": "full"}])
    spec["data"] = {"source": "text_table", **data}
    return spec


def _write(tmp_path, spec: dict):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def no_network(monkeypatch):
    def connect(*args, **kwargs):
        raise AssertionError("parsing a spec went to the network")
    monkeypatch.setattr(socket.socket, "connect", connect)


# --------------------------------------------------------------------------- URIs in the spec


def test_uri_data_paths_survive_the_spec_unmangled(tmp_path, no_network):
    local = tmp_path / "test.csv"
    local.write_text("text,label\na,b\n")
    spec = _spec(tmp_path, train="s3://bucket/sst2/train.csv", validation="gs://bucket/sst2/validation.parquet",
                 test=local.as_uri())
    job = parse_job(spec)  # a bucket is not asked while a spec is parsed
    assert (job.data.train, job.data.validation, job.data.test) == (
        "s3://bucket/sst2/train.csv", "gs://bucket/sst2/validation.parquet", local.as_uri())
    for out in (job.resolved(), job.portable(), parse_job(yaml.safe_load(yaml.safe_dump(job.portable()))).resolved()):
        assert out["data"]["train"] == "s3://bucket/sst2/train.csv"
        assert out["data"]["validation"] == "gs://bucket/sst2/validation.parquet"
        assert out["data"]["test"] == local.as_uri()


@pytest.mark.parametrize("value, expected", [
    ("http://example.com/train.csv", "http:// is not storage this tool reads"),
    ("s3://bucket", "a bucket alone; give the file or folder inside it"),
    ("s3://bucket/sst2/train.xlsx", "text_table cannot read '.xlsx'"),
])
def test_bad_uris_are_refused_with_the_field(tmp_path, no_network, value, expected):
    with pytest.raises(SpecError) as e:
        parse_job(_spec(tmp_path, train=value, validation_fraction=0.2))
    found = dict(e.value.problems)
    assert expected in found["data.train"], found


def test_a_missing_file_uri_is_refused_like_a_path(tmp_path):
    with pytest.raises(SpecError) as e:
        parse_job(_spec(tmp_path, train=(tmp_path / "no.csv").as_uri(), validation_fraction=0.2))
    assert "no.csv does not exist" in dict(e.value.problems)["data.train"]


# --------------------------------------------------------------------------- reading from a bucket


def decoded(source, config) -> dict:
    """{split: (samples, labels)}: every sample the source lists, decoded (as preparation does, in chunks)."""
    return {split: ([x for chunk in source.decode(config, refs, 3) for x in chunk], labels)
            for split, (refs, labels) in source.index(config).items()}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_text_table_reads_its_splits_from_the_bucket(s3, suffix):
    from raytune_ft.data.sources.text_table import TextTable, TextTableConfig

    config = TextTableConfig(train=TRAIN.replace(".csv", suffix), validation=VALIDATION.replace(".csv", suffix))
    got = decoded(TextTable(), config)
    assert {k: len(v[0]) for k, v in got.items()} == {"train": 64, "validation": 32}
    texts, labels = got["train"]
    assert (texts[0], labels[0]) == sentiment_rows(64, 0)[0]
    assert TextTable().train_labels(config) == [lab for _, lab in sentiment_rows(64, 0)]


def test_image_sources_read_from_the_bucket(s3):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from raytune_ft.data.sources.image_folder import ImageFolder, ImageFolderConfig
    from raytune_ft.data.sources.image_parquet import ImageParquet, ImageParquetConfig

    def png(color):
        buf = io.BytesIO()
        Image.new("RGB", (10, 12), color).save(buf, format="PNG")
        return buf.getvalue()

    s3_client = s3.client()
    buf = io.BytesIO()
    pq.write_table(pa.table({"image": [png((40 * i, 0, 0)) for i in range(4)], "label": ["a", "b"] * 2}), buf)
    s3_client.put_object(Bucket=BUCKET, Key="images/train.parquet", Body=buf.getvalue())
    config = ImageParquetConfig(train=f"s3://{BUCKET}/images/train.parquet", validation_fraction=0.5)
    images, labels = decoded(ImageParquet(), config)["train"]
    assert labels == ["a", "b", "a", "b"] and images[1].size == (10, 12) and images[1].getpixel((0, 0)) == (40, 0, 0)

    for cls, color in (("blue", (0, 0, 255)), ("red", (255, 0, 0))):
        for i in range(2):
            s3_client.put_object(Bucket=BUCKET, Key=f"images/train/{cls}/{i}.png", Body=png(color))
    s3_client.put_object(Bucket=BUCKET, Key="images/train/.DS_Store", Body=b"x")
    config = ImageFolderConfig(train=f"s3://{BUCKET}/images/train", validation_fraction=0.5)
    source = ImageFolder()
    images, labels = decoded(source, config)["train"]
    assert labels == ["blue", "blue", "red", "red"] and images[2].getpixel((0, 0)) == (255, 0, 0)
    assert source.locate(config, "train", 3) == f"s3://{BUCKET}/images/train/red/1.png"
    assert ImageFolder().train_labels(config) == labels

    s3_client.put_object(Bucket=BUCKET, Key="images/train/red/notes.txt", Body=b"x")
    with pytest.raises(Exception, match=f"s3://{BUCKET}/images/train/red/notes.txt: not an image file"):
        ImageFolder().index(config)


# --------------------------------------------------------------------------- submit checks what it can


def test_submit_leaves_a_cluster_path_and_a_bucket_to_the_cluster(tmp_path, monkeypatch, no_network):
    spec = _write(tmp_path, _spec(tmp_path, train="/mnt/cluster-only/sst2/train.csv", validation=VALIDATION))
    # run / validate here still refuse the path this machine does not have, naming the field
    with pytest.raises(SpecError) as e:
        load_job(spec)
    assert "/mnt/cluster-only/sst2/train.csv does not exist" in dict(e.value.problems)["data.train"]
    job = load_job(spec, on_cluster=True)
    assert job.data.train.as_posix() == "/mnt/cluster-only/sst2/train.csv" and job.data.validation == VALIDATION

    submitted = []

    class Jobs:
        def submit_job(self, submission_id, **request):
            submitted.append((submission_id, request))

    monkeypatch.setenv("RAYTUNE_FT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(cluster_client, "client", lambda address: Jobs())
    result = CliRunner().invoke(app, ["submit", str(spec), "--address", "http://127.0.0.1:9", "--storage",
                                      str(tmp_path / "runs"), "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert [s[0] for s in submitted] == [result.stdout.split()[0]]
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: data.train: /mnt/cluster-only/sst2/train.csv is not on this machine (a path on the cluster?): "
        "checked on the cluster before any trial (a missing one fails the job, exit 2)",
        f"note: data.validation: {VALIDATION} is in a bucket: checked on the cluster before any trial "
        "(a missing one fails the job, exit 2)"]

    # a bad value is still refused here, before anything is sent; so is a relative path that is not here
    # (the cluster looks it up in what is shipped from here)
    spec = _write(tmp_path, _spec(tmp_path, train="/mnt/cluster-only/train.xlsx", validation=VALIDATION))
    result = CliRunner().invoke(app, ["submit", str(spec), "--address", "http://127.0.0.1:9", "--storage",
                                      str(tmp_path / "runs")])
    assert result.exit_code == 2 and "data.train: /mnt/cluster-only/train.xlsx: text_table cannot read '.xlsx'" \
        in result.output and len(submitted) == 1
    spec = _write(tmp_path, _spec(tmp_path, train="data/no-such.csv", validation=VALIDATION))
    result = CliRunner().invoke(app, ["submit", str(spec), "--address", "http://127.0.0.1:9", "--storage",
                                      str(tmp_path / "runs")])
    assert result.exit_code == 2 and "data.train: data/no-such.csv does not exist" in result.output \
        and "a path only the cluster has is absolute" in result.output and len(submitted) == 1


def test_run_and_validate_here_still_refuse_a_missing_path(tmp_path):
    spec = _write(tmp_path, _spec(tmp_path, train=str(tmp_path / "no.csv"), validation_fraction=0.2))
    for args in (["validate", str(spec)], ["run", str(spec), "--run-dir", str(tmp_path / "run")]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and f"data.train: {tmp_path / 'no.csv'} does not exist" in result.output, \
            result.output
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- the pre-flight where the job runs


def test_preflight_refuses_a_missing_bucket_object_with_exit_2(s3, tmp_path, capsys):
    from raytune_ft.cluster.entry import _entry

    missing = f"s3://{BUCKET}/data/no-such-train.csv"
    spec = _write(tmp_path, _spec(tmp_path, train=missing, validation=VALIDATION))
    # the job `submit` starts on the head: `raytune-ft run` there, refused before Ray or any trial
    assert _entry(["--run-dir", str(tmp_path / "run"), "--spec", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"data.train: {missing} does not exist; give the path of the train file" in err, err
    assert "data.validation" not in err and not (tmp_path / "run").exists()

    s3.client().put_object(Bucket=BUCKET, Key="data/parts.csv/part-0.csv", Body=b"text,label\n")
    folder = _write(tmp_path, _spec(tmp_path, train=f"s3://{BUCKET}/data/parts.csv", validation=VALIDATION))
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2 and f"data.train: s3://{BUCKET}/data/parts.csv is a folder; text_table reads " \
        "one file per split" in result.output, result.output


def test_validate_reads_the_labels_from_the_bucket(s3, tmp_path):
    result = CliRunner().invoke(app, ["validate", str(_write(tmp_path, _spec(tmp_path, train=TRAIN,
                                                                             validation=VALIDATION)))])
    assert result.exit_code == 0 and ": ok (transformers" in result.output, result.output


# --------------------------------------------------------------------------- submit waits for a new head


NOT_READY = "Request failed with status code 500: No available agent to submit job, please try again later.."


class FlakyJobs:
    """A Jobs API client whose first `failures` submissions are answered with `error`."""

    def __init__(self, failures: int, error: str = NOT_READY):
        self.failures, self.error, self.calls = failures, error, 0

    def submit_job(self, submission_id, **request):
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(self.error)
        return submission_id


class Clock:
    def __init__(self):
        self.now, self.pauses = 0.0, []

    def sleep(self, s):
        self.pauses.append(s)
        self.now += s

    def __call__(self):
        return self.now


def test_submit_retries_while_the_head_has_no_agent_yet():
    jobs, clock = FlakyJobs(failures=2), Clock()
    cluster_client._submit_job(jobs, "r1", {}, sleep=clock.sleep, clock=clock)
    assert jobs.calls == 3 and clock.pauses == [0.5, 1.0]


def test_submit_gives_up_after_its_bound():
    jobs, clock = FlakyJobs(failures=10**6), Clock()
    with pytest.raises(ClusterError, match=r"did not take run r1: for 60 s its Jobs API answered .*No available agent"):
        cluster_client._submit_job(jobs, "r1", {}, sleep=clock.sleep, clock=clock)
    assert clock.now == 60.0 and clock.pauses[:5] == [0.5, 1.0, 2.0, 4.0, 8.0] and max(clock.pauses) == 8.0


def test_submit_does_not_retry_a_refusal():
    jobs = FlakyJobs(failures=1, error="Request failed with status code 400: bad runtime_env.")
    with pytest.raises(ClusterError, match="the cluster refused run r1: .*bad runtime_env"):
        cluster_client._submit_job(jobs, "r1", {}, sleep=pytest.fail)
    assert jobs.calls == 1


def test_submit_goes_through_once_the_head_is_ready(tmp_path, monkeypatch):
    jobs = FlakyJobs(failures=1)
    monkeypatch.setenv("RAYTUNE_FT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(cluster_client, "client", lambda address: jobs)
    local = tmp_path / "train.csv"
    local.write_text("text,label\na,b\n")
    spec = _write(tmp_path, _spec(tmp_path, train=str(local), validation_fraction=0.5))
    run_id = cluster_client.submit(spec, "http://127.0.0.1:9", run_id="r1", storage=str(tmp_path / "runs"),
                                   project=tmp_path)
    assert run_id == "r1" and jobs.calls == 2 and "r1" in cluster_client.known_runs()


# --------------------------------------------------------------------------- end to end: `run` reads from the bucket


@pytest.mark.ray
def test_run_reads_its_data_from_the_bucket(s3, tiny_bert, tmp_path):
    spec = text_spec(tiny_bert, {"train": TRAIN, "validation": VALIDATION}, strategies=[{"name": "full"}],
                     training={"epochs": 1}, search={"num_samples": 1, "hparams": {"lr": 3e-3, "batch_size": 16}})
    path = _write(tmp_path, spec)
    out = subprocess.run([sys.executable, "-m", "raytune_ft.cli", "run", str(path), "--run-dir", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=600, cwd=ROOT, env=os.environ.copy())
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "data prepared once" in out.stdout and "train 64, validation 32" in out.stdout, out.stdout
    from raytune_ft.results.tables import read_table

    trials = read_table(tmp_path / "run" / "trials.parquet")
    assert [t["status"] for t in trials] == ["completed"], trials
    job = yaml.safe_load((tmp_path / "run" / "job.yaml").read_text())
    assert job["data"]["train"] == TRAIN and job["data"]["validation"] == VALIDATION
