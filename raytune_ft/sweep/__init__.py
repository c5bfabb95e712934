"""The sweep: search space, schedulers, one Tune trial per configuration (a TorchTrainer each), the
callback that keeps the records and tables, Ray start-up and pre-flight. `run.py` ties them together."""
