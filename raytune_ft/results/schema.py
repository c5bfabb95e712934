"""The one place that declares each table a run writes: its columns, their Arrow types and what each holds.

Every table is written with these types whatever its rows hold (a column no row has is written as nulls of
its type, never as Arrow's `null` type), so the tables of many runs read as one:

    pd.read_parquet("runs/")             # every run's trials.parquet, strategies.parquet ... concatenated

A few columns depend on the job and follow the declared ones: a strategy's own knobs in trials.parquet
(`lora.r`, `lora.target_modules`: their values' type, text where no trial had one) and a multi-task job's
per-task metrics (`best_val_accuracy.topic`: float). docs/reference/tables.md is generated from this module.
"""
from __future__ import annotations

from raytune_ft.hparams import HParams

STR, INT, FLOAT, BOOL, TIME = "string", "int64", "float64", "bool", "timestamp[us, tz=UTC]"


def _hparams() -> list[tuple[str, str, str]]:
    kinds = {bool: BOOL, int: INT, float: FLOAT, type(None): FLOAT}  # None: an optional rate (drop_path_rate: the model's own)
    return [(name, kinds[type(default)], f"hyperparameter: {field.description}")
            for (name, field), default in zip(HParams.model_fields.items(), HParams().model_dump().values())]


TRIALS = [
    ("job", STR, "the job's name"),
    ("run_id", STR, "the run folder's name"),
    ("trial_id", STR, "Tune's id of the trial"),
    ("strategy", STR, "the strategy's name"),
    ("seed", INT, "the trial's own seed"),
    ("stage", STR, "search; select (top_k > 1: the candidates on selection seeds, chosen on validation); or "
                   "confirm (the chosen configuration on fresh seeds, scored on test)"),
    ("train_size", INT, "training samples of the trial (data.train_sizes), else the whole train split's"),
    ("source_trial_id", STR, "a select / confirm trial: the search trial whose configuration it repeats"),
    ("data_seed", INT, "search.confirm.vary_data: the seed that drew its train / validation split and subset"),
    ("val_samples", INT, "validation samples it was scored on (data.cap_validation: at most its training set)"),
    *_hparams(),
    ("status", STR, "completed, stopped_early (the scheduler), stopped_patience (training.patience) or error"),
    ("epochs_run", INT, "epochs the trial reported"),
    ("score", FLOAT, "the best value of search.metric over its epochs"),
    ("best_epoch", INT, "the epoch of that score"),
    ("best_val_accuracy", FLOAT, "validation accuracy at the best epoch"),
    ("best_val_f1", FLOAT, "validation macro-F1 at the best epoch"),
    ("best_val_loss", FLOAT, "validation loss at the best epoch"),
    ("last_val_accuracy", FLOAT, "validation accuracy at the last epoch"),
    ("last_val_f1", FLOAT, "validation macro-F1 at the last epoch"),
    ("last_val_loss", FLOAT, "validation loss at the last epoch"),
    ("test_accuracy", FLOAT, "a confirm trial: test accuracy at its best-validation epoch"),
    ("test_f1", FLOAT, "a confirm trial: test macro-F1 at its best-validation epoch"),
    ("test_loss", FLOAT, "a confirm trial: test loss at its best-validation epoch"),
    ("test_score", FLOAT, "a confirm trial: the test counterpart of search.metric"),
    ("test_samples", INT, "a confirm trial: the test split's samples (its accuracy moves in steps of 1 / this)"),
    ("trainable_params", INT, "weights that trained (the most at any epoch)"),
    ("total_params", INT, "weights of the whole model"),
    ("trainable_fraction", FLOAT, "trainable_params / total_params"),
    ("wall_seconds", FLOAT, "seconds from the trial's start to its end, over every driver that ran it"),
    ("train_seconds", FLOAT, "seconds spent training (every epoch)"),
    ("eval_seconds", FLOAT, "seconds spent validating (and testing, in confirm)"),
    ("checkpoint_seconds", FLOAT, "seconds spent writing checkpoints"),
    ("first_step_seconds", FLOAT, "seconds from the worker's start to its first optimizer step"),
    ("data_load_seconds", FLOAT, "seconds the worker took to load the prepared data"),
    ("samples_per_sec", FLOAT, "training samples per second, mean over epochs"),
    ("peak_memory_mb", FLOAT, "peak memory of a worker: CUDA allocated on a GPU, RSS on a CPU"),
    ("checkpoint_path", STR, "the best epoch's checkpoint: relative to the run folder, or a bucket URI"),
    ("checkpoint_bytes", INT, "what is kept of its checkpoints: its best weights, if it is among search.keep_best"),
    ("resumes", INT, "times the trial went on from a checkpoint (worker restarts, resumed sweeps)"),
    ("started_at", TIME, "when the trial started (UTC)"),
    ("ended_at", TIME, "when it ended (UTC)"),
    ("error_reason", STR, "a failed trial: the line of its error that says what went wrong"),
    ("error", STR, "a failed trial: its whole error text"),
]

STRATEGIES = [
    ("strategy", STR, "the strategy's name"),
    ("train_size", INT, "training samples (one row per strategy and train size)"),
    ("metric", STR, "what best_score / mean_score are of: search.metric"),
    ("trials", INT, "search trials"),
    ("completed", INT, "of them, ran every epoch"),
    ("stopped_early", INT, "stopped by the scheduler"),
    ("stopped_patience", INT, "ended by training.patience"),
    ("errored", INT, "failed"),
    ("best_score", FLOAT, "the best search trial's score (one seed, chosen on validation: optimistic)"),
    ("mean_score", FLOAT, "mean score of the trials that did not fail (stopped ones at their best)"),
    ("std_score", FLOAT, "their standard deviation"),
    ("best_trial_id", STR, "the best search trial"),
    ("best_config", STR, "its hyperparameters and knobs, as JSON"),
    ("trainable_fraction", FLOAT, "the best trial's share of trainable weights"),
    ("trainable_params", INT, "the best trial's trainable weights"),
    ("compute_seconds", FLOAT, "wall seconds of all its search trials"),
    ("median_peak_memory_mb", FLOAT, "median over its trials of a worker's peak memory"),
    ("median_samples_per_sec", FLOAT, "median over its trials of training samples per second"),
    ("checkpoint_bytes", INT, "what is kept of its search trials' checkpoints"),
    ("test_accuracy", FLOAT, "the best search trial re-evaluated on the test split"),
    ("test_f1", FLOAT, "the same, macro-F1"),
    ("test_loss", FLOAT, "the same, loss"),
    ("confirm_mean", FLOAT, "confirmed test score: mean over the confirm seeds"),
    ("confirm_std", FLOAT, "its standard deviation over the seeds"),
    ("ci_low", FLOAT, "95 % interval of confirm_mean (Student's t, floored at the test split's grid)"),
    ("ci_high", FLOAT, "its high end"),
    ("confirm_n", INT, "confirm seeds with a score"),
    ("confirm_config", STR, "the confirmed configuration, as JSON"),
    ("confirm_trial_id", STR, "the search trial whose configuration was confirmed"),
    ("confirm_compute_seconds", FLOAT, "wall seconds of all its select and confirm trials"),
    ("confirm_covers", STR, "what the interval's seeds varied: the seed alone, or also the data drawn"),
    ("standing", STR, "against the best of the others: best, below, highest mean, not told apart, too few "
                      "seeds, not confirmed"),
    ("vs_best_low", FLOAT, "its mean minus the best mean of the others: interval low end (all pairs, 95 %)"),
    ("vs_best_high", FLOAT, "its high end"),
    ("seeds_needed", INT, "about how many seeds would tell it from the highest mean, at the gap and spread seen"),
    ("claim_seeds", INT, "the fewest seeds any claim at this train size needs"),
    ("forecast_compute_seconds", FLOAT, "plan.json's forecast of compute_seconds (a run with a plan)"),
    ("compute_forecast_error", FLOAT, "compute_seconds / forecast_compute_seconds - 1"),
    ("forecast_epochs", FLOAT, "the forecast's expected epochs of its search trials, under the scheduler"),
    ("epochs_run", INT, "the epochs its search trials ran, summed (a run with a plan)"),
    ("forecast_confirm_compute_seconds", FLOAT, "the forecast of confirm_compute_seconds"),
    ("forecast_peak_memory_mb", FLOAT, "the forecast of a worker's peak memory at its largest searched setting"),
    ("peak_memory_mb", FLOAT, "the largest peak memory a worker of its trials reported (a run with a plan)"),
]

EPOCHS = [
    ("run_id", STR, "the run folder's name"),
    ("trial_id", STR, "the trial"),
    ("strategy", STR, "its strategy"),
    ("stage", STR, "search or confirm"),
    ("train_size", INT, "its training samples"),
    ("status", STR, "the trial's status when the table was written (running while it runs)"),
    ("epoch", INT, "the epoch"),
    ("train_loss", FLOAT, "mean training loss of the epoch"),
    ("val_loss", FLOAT, "validation loss after it"),
    ("val_accuracy", FLOAT, "validation accuracy after it"),
    ("val_f1", FLOAT, "validation macro-F1 after it"),
    ("lr", FLOAT, "the head's learning rate at its end"),
    ("samples_per_sec", FLOAT, "training samples per second"),
    ("train_seconds", FLOAT, "seconds it trained"),
    ("peak_memory_mb", FLOAT, "a worker's peak memory so far"),
    ("param_bytes", INT, "the weights a worker holds (the largest worker's): the whole model under DDP, its shard "
                         "under FSDP (resources.distributed)"),
    ("optimizer_bytes", INT, "the optimizer's state a worker holds (AdamW: two moments per trained weight), the "
                             "same way"),
    ("distributed_type", STR, "how the trial's workers shared the model: Accelerate's DistributedType (NO, "
                              "MULTI_CPU / MULTI_GPU: DDP, FSDP)"),
    ("resumes", INT, "resumes so far"),
    ("node_id", STR, "the Ray node it ran on"),
]

COMPARISONS = [
    ("train_size", INT, "training samples"),
    ("metric", STR, "the test metric compared"),
    ("strategy_a", STR, "A"),
    ("strategy_b", STR, "B (every ordered pair has a row)"),
    ("n", INT, "confirm seeds both have a score on"),
    ("diff_mean", FLOAT, "mean over those seeds of A's score minus B's"),
    ("diff_sd", FLOAT, "their standard deviation, floored at the test split's grid"),
    ("diff_ci_low", FLOAT, "interval of diff_mean, simultaneous over every pair (Bonferroni, 95 %)"),
    ("diff_ci_high", FLOAT, "its high end"),
    ("p_value", FLOAT, "paired t-test, this pair alone, two-sided"),
    ("p_value_adjusted", FLOAT, "p_value x family (at most 1)"),
    ("p_value_exact", FLOAT, "exact sign-flip test, this pair alone, two-sided (no distribution assumed)"),
    ("p_a_better", FLOAT, "the chance that A beats B on a fresh seed (a tie counts 1/2)"),
    ("p_a_better_low", FLOAT, "its exact 95 % interval, low end"),
    ("p_a_better_high", FLOAT, "its high end"),
    ("family", INT, "pairs the intervals hold for at once"),
    ("told_apart", BOOL, "the interval excludes 0, with at least the seeds a claim needs"),
]

BUDGET_CURVES = [
    ("strategy", STR, "the strategy"),
    ("train_size", INT, "training samples"),
    ("trials", INT, "n: search trials drawn"),
    ("compute_seconds", FLOAT, "n x what a scored draw cost (all its search trials' seconds / draws)"),
    ("expected_best", FLOAT, "expected best validation score of n draws (Dodge et al. 2019)"),
    ("band_low", FLOAT, "95 % band, simultaneous over the curve (opda), low side"),
    ("band_high", FLOAT, "its high side"),
    ("band_method", STR, "how the band was made"),
    ("draws", INT, "scored search trials the curve is made of"),
    ("stopped_draws", INT, "of them, stopped early (they count with the score they had reached)"),
]

DATA_SIZE = [
    ("strategy", STR, "the strategy"),
    ("train_size", INT, "training samples"),
    ("score", FLOAT, "confirmed test mean (a run with a confirm stage), else the search's best validation score"),
    ("ci_low", FLOAT, "its 95 % interval, low end (confirmed scores only)"),
    ("ci_high", FLOAT, "its high end"),
    ("n", INT, "confirm seeds"),
    ("standing", STR, "against the best of the others at this size"),
    ("score_kind", STR, "which score this is"),
]

TABLES = {"trials": TRIALS, "strategies": STRATEGIES, "epochs": EPOCHS, "comparisons": COMPARISONS,
          "budget_curves": BUDGET_CURVES, "data_size": DATA_SIZE}


def arrow_schema(table: str, rows: list[dict]):
    """The Arrow schema of `table` ("trials", ...) for these rows: the declared columns, then the job's own
    (a strategy's knobs: their values' type; per-task metrics: float; text where every value is null)."""
    import pyarrow as pa

    declared = TABLES[table]
    names = {name for name, _, _ in declared}
    fields = [pa.field(name, pa.type_for_alias(kind) if kind != TIME else pa.timestamp("us", tz="UTC"))
              for name, kind, _ in declared]
    for extra in dict.fromkeys(k for r in rows for k in r if k not in names):
        fields.append(pa.field(extra, _extra_type(extra, [r.get(extra) for r in rows if r.get(extra) is not None])))
    return pa.schema(fields)


def _extra_type(name: str, values: list):
    import pyarrow as pa

    if name.split(".")[0].startswith(("best_val_", "last_val_", "val_", "test_")):
        return pa.float64()
    try:
        kind = pa.array(values).type
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # values of several kinds: as text
        return pa.string()
    return pa.string() if pa.types.is_null(kind) else kind


def column(values: list, kind):
    """Cells as an Arrow array of `kind`: whole floats into integers, NaN as null where the type has no NaN,
    epoch seconds as UTC timestamps, anything else into text as JSON (lists, dicts) or its str()."""
    import json
    from datetime import datetime, timezone

    import pyarrow as pa

    def missing(v):
        return v is None or (isinstance(v, float) and v != v)

    if pa.types.is_integer(kind):
        values = [None if missing(v) else int(v) for v in values]
    elif pa.types.is_boolean(kind):
        values = [None if missing(v) else bool(v) for v in values]
    elif pa.types.is_timestamp(kind):
        values = [None if missing(v) else datetime.fromtimestamp(v, timezone.utc) if isinstance(v, (int, float))
                  else v for v in values]
    elif pa.types.is_string(kind):
        values = [None if v is None else v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, dict))
                  else str(v) for v in values]
    return pa.array(values, type=kind)
