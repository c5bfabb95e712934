"""After (and while) trials run: the Parquet tables, the test-split evaluation of each strategy's
best trial, the progress view, and the HTML report."""
