# One image for every service of docker-compose.yml: the pinned stack plus this project.
FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
WORKDIR /opt/seg
COPY requirements.lock ./
RUN pip install --no-cache-dir "uv==0.9.30" && uv pip install --system --no-cache -r requirements.lock
COPY . .
RUN uv pip install --system --no-deps -e .
ENV SEG_DATA_DIR=/data AIRFLOW_HOME=/data/airflow AIRFLOW__CORE__DAGS_FOLDER=/opt/seg/dags
