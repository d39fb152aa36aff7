"""Customer segmentation platform. The rooms (docs/architecture.md):

    core/       settings, paths, warehouse, catalog (every table and its one writer), contract/
    lake/       landing, `seg import`, money            transform/  dbt runner, write-audit-publish
    triggers/   trigger segments                         generate/   the synthetic data generator
    pipeline/   daily stages, micro-batch, Airflow adapter, `seg` CLI      bench/  benchmarks
"""

__version__ = "0.1.0"
