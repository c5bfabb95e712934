"""Data sources: each prepares tensors once; bad rows and files are named."""
from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from raytune_ft.data import load_meta, load_split, prepare_data
from raytune_ft.spec import parse_job
from tests.conftest import text_spec, vision_spec


def test_digits_splits_are_stratified_and_resized(resnet_weights, tmp_path):
    job = parse_job(vision_spec(resnet_weights, data={"source": "digits"}))
    meta = prepare_data(job, tmp_path)
    assert {s: v["samples"] for s, v in meta["splits"].items()} == {"train": 1257, "validation": 270, "test": 270}
    train = load_split(tmp_path, "train")
    # stored at the resize size (16 / 0.875 = 18), the model sees the center 16: tests/test_images.py
    assert train["pixel_values"].shape == (1257, 3, 18, 18) and train["pixel_values"].dtype == torch.uint8
    assert min(meta["splits"]["validation"]["class_counts"]) >= 26
    assert load_meta(tmp_path)["classes"] == [str(i) for i in range(10)]


def test_text_table_tokenizes_once(tiny_bert, text_csvs, tmp_path):
    meta = prepare_data(parse_job(text_spec(tiny_bert, text_csvs)), tmp_path)
    assert meta["classes"] == ["neg", "pos"] and meta["family"] == "text"
    train = load_split(tmp_path, "train")
    assert train["input_ids"].shape == (64, 16) and train["attention_mask"][0].sum() >= 6


def test_unknown_label_is_named_with_file_and_row(tiny_bert, text_csvs, tmp_path):
    text_csvs["validation"].write_text("text,label\ngood film,pos\nbad film,meh\n")
    with pytest.raises(ValueError, match=r"validation.csv row 1 \(validation split\): label 'meh' is not one of the "
                                         r"classes found in train"):
        prepare_data(parse_job(text_spec(tiny_bert, text_csvs)), tmp_path / "d")


def test_missing_column_and_empty_split(tiny_bert, text_csvs, tmp_path):
    spec = text_spec(tiny_bert, text_csvs)
    spec["data"]["text_column"] = "review"
    with pytest.raises(ValueError, match="train.csv: no column 'review'; it has 'text', 'label'"):
        prepare_data(parse_job(spec), tmp_path / "a")
    text_csvs["test"].write_text("text,label\n")
    with pytest.raises(ValueError, match=r"test.csv \(test split\) has no samples"):
        prepare_data(parse_job(text_spec(tiny_bert, text_csvs)), tmp_path / "b")


def _png(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (10, 12), color).save(buf, format="PNG")
    return buf.getvalue()


def test_image_folder_and_validation_fraction(resnet_weights, tmp_path):
    for cls, color in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(5):
            (tmp_path / "train" / cls / f"{i}.png").write_bytes(_png(color))
    spec = vision_spec(resnet_weights, data={"source": "image_folder", "train": str(tmp_path / "train"),
                                             "validation_fraction": 0.2})
    meta = prepare_data(parse_job(spec), tmp_path / "out")
    assert meta["classes"] == ["blue", "red"]
    assert meta["splits"]["train"]["samples"] == 8 and meta["splits"]["validation"]["samples"] == 2
    x = load_split(tmp_path / "out", "train")["pixel_values"]
    assert x.shape == (8, 3, 18, 18) and set(x[:, 0].flatten().tolist()) <= {0, 255}
    (tmp_path / "train" / "red" / "9.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"9.png: not a readable image"):
        prepare_data(parse_job(spec), tmp_path / "out2")


def test_image_parquet(resnet_weights, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for split in ("train", "validation"):
        pq.write_table(pa.table({"image": [_png((i * 20, 0, 0)) for i in range(6)],
                                 "label": ["a", "b"] * 3}), tmp_path / f"{split}.parquet")
    spec = vision_spec(resnet_weights, data={"source": "image_parquet", "train": str(tmp_path / "train.parquet"),
                                             "validation": str(tmp_path / "validation.parquet")})
    meta = prepare_data(parse_job(spec), tmp_path / "out")
    assert meta["splits"]["validation"]["class_counts"] == [3, 3]
    pq.write_table(pa.table({"image": [b"junk"], "label": ["a"]}), tmp_path / "validation.parquet")
    with pytest.raises(ValueError, match=r"validation.parquet row 0: not a readable image"):
        prepare_data(parse_job(spec), tmp_path / "out2")


def test_csv_labels_stay_text_in_numeric_order_and_rows_count_in_file_order(tiny_bert, text_csvs, tmp_path):
    """CSV cells are read as text ("007" stays "007"); numeric class names sort as numbers. With
    validation_fraction, a bad label is still reported by its row in the file (checked before the hold-out)."""
    rows = [("good film", "10"), ("bad film", "2"), ("nice plot", "10"), ("sad plot", "2")] * 3
    text_csvs["train"].write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows) + "007,2\n")
    spec = text_spec(tiny_bert, {"train": text_csvs["train"], "validation": None, "test": None})
    spec["data"]["validation_fraction"] = 0.25
    meta = prepare_data(parse_job(spec), tmp_path / "a")
    assert meta["classes"] == ["2", "10"]
    assert sum(v["samples"] for v in meta["splits"].values()) == 13
    text_csvs["train"].write_text(text_csvs["train"].read_text() + "odd one,3\n")
    spec["data"]["classes"] = ["2", "10"]
    with pytest.raises(ValueError, match=r"train.csv row 13 \(train split\): label '3' is not one of data.classes"):
        prepare_data(parse_job(spec), tmp_path / "b")


@pytest.mark.parametrize("validation_fraction, test_fraction", [(0.02, 0.02), (0.49, 0.49), (0.96, 0.02), (0.02, 0.0)])
def test_digits_shares_that_validate_can_be_split(validation_fraction, test_fraction):
    """The smallest shares `validate` accepts still give every split every digit (scikit-learn's
    stratified split would fail at `run` otherwise)."""
    from raytune_ft.data.sources.digits import Digits, DigitsConfig

    config = DigitsConfig(validation_fraction=validation_fraction, test_fraction=test_fraction)
    splits = Digits().index(config)
    assert set(splits) == {"train", "validation"} | ({"test"} if test_fraction else set())
    for split, (_, labels) in splits.items():
        assert set(labels) == set(range(10)), split


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_a_text_batch_loses_only_padding_and_the_model_computes_the_same(tiny_bert, text_csvs, tmp_path, pooling):
    """Stored at max length 32, a batch of ~8-token texts is cut after its last attended column: the same
    logits as the full-length batch (mean pooling and [CLS]); left padding and full rows are left alone."""
    from raytune_ft.train.evaluate import model_inputs, trim_padding
    from raytune_ft.train.model import build_trial_model

    spec = text_spec(tiny_bert, text_csvs)
    spec["model"].update(max_length=32, pooling=pooling)
    job = parse_job(spec)
    meta = prepare_data(job, tmp_path)
    batch = {k: v[:16] for k, v in load_split(tmp_path, "train").items()}
    longest = int(batch["attention_mask"].sum(1).max())
    assert longest < 32
    trimmed = model_inputs(batch, meta, torch.device("cpu"))
    assert trimmed["input_ids"].shape == (16, longest) and trimmed["attention_mask"].shape == (16, longest)
    model, _, _ = build_trial_model(job.model.model_dump(), {"name": "full"}, 0.0, len(meta["classes"]))
    model.eval()
    with torch.no_grad():
        full = model(**{k: v for k, v in batch.items() if k != "labels"})
        cut = model(**trimmed)
    assert torch.allclose(full, cut, atol=1e-5), (full - cut).abs().max()

    left = {k: v.flip(1) for k, v in batch.items() if k != "labels"}  # padding on the left: every row ends in a token
    assert trim_padding(left)["input_ids"].shape == (16, 32)
    whole = {"input_ids": torch.ones(2, 5, dtype=torch.long), "attention_mask": torch.ones(2, 5, dtype=torch.long)}
    assert trim_padding(whole)["input_ids"].shape == (2, 5)


def test_a_tokenizer_without_words_is_refused_before_anything_is_written(tiny_bert, text_csvs, tmp_path):
    """A model folder whose tokenizer knows only its special tokens turns every word into [UNK]."""
    import shutil

    from transformers import BertTokenizerFast

    from raytune_ft.errors import InputError

    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    for f in model.glob("*token*"):
        f.unlink()
    (model / "vocab.txt").write_text("\n".join(specials) + "\n")
    BertTokenizerFast(vocab={w: i for i, w in enumerate(specials)}).save_pretrained(model)
    with pytest.raises(InputError, match=r"turns every word of train into \[UNK\]"):
        prepare_data(parse_job(text_spec(model, text_csvs)), tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.npy"))
