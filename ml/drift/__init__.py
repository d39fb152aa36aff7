"""Data and segment drift of `marts.customer_features` against the champion's training reference.

Modules, in the order the data flows (import each one directly; this package holds no code):

- `reference` the training reference: built by `ml.train` (`build_reference`), stored with the model as
              `reference.json`, read back by the monitor; also the warehouse reads both sides share.
- `stats`     pure statistics of small vectors: PSI and its sampling-noise floor, KS, Wasserstein, chi-square,
              Jensen-Shannon.
- `measure`   today's statistics against the reference (features, segment mix and confidence, today's orders),
              numpy on what the monitor read.
- `rules`     pure decision rules: stable / watch / drift per statistic, none / warn / retrain for the day.
- `report`    the self-contained HTML report.
- `monitor`   the daily stage `run(settings, as_of_date)` (and `compute`, the report without writing): the one
              writer of monitoring.drift_metrics, monitoring.drift_segment_metrics and monitoring.drift_decisions.

The drift step's benchmark is `seg.bench.drift.bench`.
"""
