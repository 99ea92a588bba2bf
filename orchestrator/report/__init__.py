"""``ddx report``: tables, curves, image grids and provenance from an experiment's Parquet files.

:func:`~orchestrator.report.write.write_report` reads ``results.parquet`` (and ``reference.parquet``
when present), builds one :class:`~orchestrator.report.document.Document` and renders it as
Markdown (``report.md`` + ``figures/``) and/or one self-contained HTML file (``report.html``).

This package's ``__init__`` imports nothing: a sweep's closing summary reads
:mod:`orchestrator.report.aggregate` (pandas) without loading matplotlib, torch and torchvision,
which the document's figures and image grids need.
"""
