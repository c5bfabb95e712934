"""Know the cost before the sweep: `raytune-ft plan JOB` (and `run`, before its first trial) calibrates each
strategy on the hardware its trials will use and forecasts the job: seconds per epoch and per trial, the epochs
the scheduler will run, the confirm stage, compute (CPU- / GPU-hours), wall time, and each worker's peak memory,
refusing a strategy a worker cannot hold. A budget (search.budget) sets num_samples from the forecast.

    space.py      which searched knobs change cost; where to calibrate; how many trials
    calibrate.py  a few batches and a validation pass of each strategy, in a fresh process (or a Ray task)
    together.py   those processes side by side, timed together, as the sweep's trials run
    from_run.py   a finished run's trials as the calibration
    costs.py      a strategy's cost model from its points
    schedule.py   the schedulers' rules simulated: expected epochs, the stages' wall time
    memory.py     a worker's peak memory: its parts, what the worker has, the refusal
    forecast.py   the forecast (plan.json)
    budget.py     search.budget -> num_samples
    make.py       all of it in order, for the `plan` command and for `run`
    show.py       the forecast within 80 columns
    actual.py     the forecast beside what the run did
"""
