"""What a run writes while and after its trials run: the Parquet tables and their declared schemas, the
test-split evaluation of each strategy's best trial, the curves' tables, and the live progress view."""
