"""Customer segments with scikit-learn, tracked in MLflow.

Modules by step, each with a `run(settings, as_of_date)` entry point where it is a pipeline stage:

- `features`  reads `marts.customer_features` from DuckDB (samples, chunks, reference bins) and builds the
              unfitted preprocessing `ColumnTransformer`.
- `candidates` fits the candidate families (k-means, Ward, GMM, HDBSCAN, RFM score) on the preprocessed fit
              sample; builds the served nearest-centroid model.
- `selection` scores the fitted candidates (metrics, bootstrap stability), ranks them, applies the selection rule
              and lists the quality bars the chosen one misses.
- `matching`  maps a refit's clusters onto the champion's segment ids (Hungarian) and the transition matrix.
- `naming`    turns each cluster's standardised profile into a readable segment name.
- `plots`     matplotlib figures (Agg, no pyplot state) for MLflow and the drift report.
- `promotion` the `champion` / `challenger` rule for a newly registered version.
- `train`     `should_train()` and `run()`: one parent MLflow run, a child run per candidate, the registered model
              and its alias.
- `assign`    scores everyone with the champion in chunks into `ml_stage.customer_assignments` and writes
              `ml_stage.segment_profiles`; seg.transform.segments publishes them.
- `explain`   why a customer is in their segment (`seg explain`).
- `drift`     package: PSI of today's features (and segment mix, today's orders) against the champion's
              `reference.json`; the daily stage is `ml.drift.monitor.run` (table of contents in ml/drift/__init__.py).
- `tracking`  MLflow URI, experiments, champion lookup and loading.

The package imports neither Airflow nor Great Expectations; every entry point takes a `seg.core.config.Settings` and an
explicit `as_of_date` and returns a JSON-serialisable dict (safe for XCom).
"""
