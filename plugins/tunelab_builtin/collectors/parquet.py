"""The ``parquet`` collector: Parquet files, one row per table row."""

from __future__ import annotations

from tunelab_builtin.collectors._files import FileCollector
from tunelab_builtin.collectors._records import SourceError


class ParquetCollector(FileCollector):
    """Parquet files; the row number (from 1) is the line in the row id."""

    suffixes = (".parquet",)

    def read(self, file, label, ctx):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(file)
        except Exception as exc:  # pyarrow raises several types for broken files
            raise SourceError(f"{file} is not a readable Parquet file: {exc}") from exc
        yield from enumerate(table.to_pylist(), start=1)
