"""Customer segments with scikit-learn, tracked in MLflow.

Modules by step, each with a `run(settings, as_of_date)` entry point where it is a pipeline stage:

- `features`  reads `marts.customer_features` from DuckDB (samples, chunks, reference bins) and builds the
              unfitted preprocessing `ColumnTransformer`.
- `evaluate`  fits and scores the candidate families (k-means, Ward, GMM, HDBSCAN), their bootstrap stability,
              and applies the selection rule; builds the served nearest-centroid model.
- `matching`  maps a refit's clusters onto the champion's segment ids (Hungarian) and the transition matrix.
- `naming`    turns each cluster's standardised profile into a readable segment name.
- `plots`     matplotlib figures (Agg, no pyplot state) for MLflow and the drift report.
- `train`     `should_train()` and `run()`: one parent MLflow run, a child run per candidate, the registered model
              and the `champion` / `challenger` alias.
- `assign`    scores everyone with the champion in chunks into `ml_stage.customer_assignments` and writes
              `ml_stage.segment_profiles`; `publish_profiles()` copies them to `marts.segment_profiles`.
- `explain`   why a customer is in their segment (`seg explain`).
- `bench`     `train_assign()` timings for the benchmark.
- `drift`     PSI of today's features (and segment mix) against the champion's `reference.json`.
- `tracking`  MLflow URI, experiments, champion lookup and loading.

The package imports neither Airflow nor Great Expectations; every entry point takes a `seg.config.Settings` and an
explicit `as_of_date` and returns a JSON-serialisable dict (safe for XCom).
"""
