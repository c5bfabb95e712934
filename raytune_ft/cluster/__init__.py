"""Running on a Ray cluster: the Jobs API client (submit, status, logs, stop, fetch) and run storage
(a shared path, or a bucket URI mirrored with pyarrow's filesystems)."""
