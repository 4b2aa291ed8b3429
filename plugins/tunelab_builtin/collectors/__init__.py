"""Collectors: read a source (files, a database, a dataset library, web pages, PDFs)
into rows. One file per collector; what they share is in ``_records.py`` (every
collector), ``_files.py`` (the file collectors) and ``_formats.py`` (the ``format``
adapters).
"""

from tunelab.api import Component
from tunelab_builtin.collectors._records import FileSourceConfig, PathConfig
from tunelab_builtin.collectors.csv import CsvCollector, CsvSourceConfig, TsvCollector
from tunelab_builtin.collectors.hf_dataset import HfDatasetCollector, HfDatasetConfig
from tunelab_builtin.collectors.html import HtmlCollector, HtmlSourceConfig
from tunelab_builtin.collectors.json import JsonCollector, JsonlCollector, JsonSourceConfig
from tunelab_builtin.collectors.parquet import ParquetCollector
from tunelab_builtin.collectors.pdf import PdfCollector, PdfSourceConfig
from tunelab_builtin.collectors.sql import SqlCollector, SqlSourceConfig
from tunelab_builtin.collectors.text import TextCollector, TextSourceConfig

COMPONENTS = [
    Component("jsonl", JsonlCollector, FileSourceConfig),
    Component("json", JsonCollector, JsonSourceConfig),
    Component("csv", CsvCollector, CsvSourceConfig),
    Component("tsv", TsvCollector, CsvSourceConfig),
    Component("parquet", ParquetCollector, PathConfig),
    Component("text", TextCollector, TextSourceConfig),
    Component("sql", SqlCollector, SqlSourceConfig),
    Component("hf_dataset", HfDatasetCollector, HfDatasetConfig),
    Component("html", HtmlCollector, HtmlSourceConfig),
    Component("pdf", PdfCollector, PdfSourceConfig),
]
