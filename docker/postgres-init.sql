-- Run once by the postgres image as POSTGRES_USER (from .env), who therefore owns the MLflow database too.
CREATE DATABASE mlflow;
