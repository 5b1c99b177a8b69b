"""The Parquet results store: schemas, atomic writes, reads."""
