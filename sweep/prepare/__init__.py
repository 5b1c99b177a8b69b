"""``sweep data prepare``: text, JSONL or Parquet tokenized into the sharded token datasets a sweep trains on."""
