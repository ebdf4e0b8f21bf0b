# Image for the scheduler, DAG processor, API server and Spark jobs (client mode).
# The Spark jars come from the same include/pom.xml as `make jars`; nothing is
# downloaded when a Spark session starts. Python: the runtime lock requirements.txt (the
# jobs' and Airflow's dependencies; no test, lint or audit tool) and the project's wheel,
# both from pyproject.toml. `make setup` installs requirements-dev.txt instead.

# The project's wheel: spark_jobs, include and the expectation suites (pyproject.toml).
# .gitignore comes along so the build leaves out what git does (__pycache__ and the like).
FROM python:3.11-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml .gitignore ./
COPY spark_jobs/ spark_jobs/
COPY include/ include/
COPY expectations/ expectations/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# The Spark jars (Delta, S3A), from the same pom as `make jars`; the build tools stay here.
FROM python:3.11-slim-bookworm AS jars
RUN apt-get update \
 && apt-get install -y --no-install-recommends maven openjdk-17-jdk-headless \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY include/pom.xml include/pom.xml
RUN mvn -q -B -f include/pom.xml package

# Runtime: a JRE, the runtime lock, the wheel, the jars; no compiler, Maven or test tool.
FROM python:3.11-slim-bookworm

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    APP_HOME=/opt/lakehouse \
    AIRFLOW_HOME=/opt/airflow \
    JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64

RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps tini \
 && rm -rf /var/lib/apt/lists/*

WORKDIR ${APP_HOME}

# Jars first: they change least often, so this layer stays cached.
COPY --from=jars /src/.cache/jars/ .cache/jars/

COPY requirements.txt .
RUN pip install --no-deps -r requirements.txt

# spark_jobs and include import from site-packages; the suites sit beside them
# (site-packages/expectations), where spark_jobs.config looks. spark-submit runs the job
# files there (include.operators.job_application).
COPY --from=wheel /dist/ /tmp/dist/
RUN pip install --no-deps /tmp/dist/purchase_lakehouse-*.whl \
 && rm -rf /tmp/dist

COPY dags/ dags/
COPY plugins/ plugins/
COPY include/docker-entrypoint.sh include/docker-entrypoint.sh

# Login: SimpleAuthManager users (names and roles only; no password is baked in).
# The entrypoint refuses to start the API server until the operator supplies one:
# LAKEHOUSE_AIRFLOW_PASSWORD, or a passwords file named by
# AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE. See docs/SECURITY.md.
# LAKEHOUSE_ROOT: the default a checkout has (<project>/lakehouse); a deployment sets its own.
ENV LAKEHOUSE_ROOT=${APP_HOME}/lakehouse \
    LAKEHOUSE_JARS_DIR=${APP_HOME}/.cache/jars \
    AIRFLOW__CORE__DAGS_FOLDER=${APP_HOME}/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=${APP_HOME}/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin \
    AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False \
    AIRFLOW_API_PORT=8080

# The code stays root-owned and read-only to the service user; only AIRFLOW_HOME
# (logs, generated passwords file) is writable.
RUN groupadd --gid 50000 airflow \
 && useradd --create-home --uid 50000 --gid 50000 airflow \
 && mkdir -p ${AIRFLOW_HOME} && chown -R airflow:airflow ${AIRFLOW_HOME} \
 && chmod 0755 include/docker-entrypoint.sh
USER 50000:50000

EXPOSE 8080
# Probes the API server on ${AIRFLOW_API_HOST:-127.0.0.1}; override it for the scheduler
# and DAG processor containers (e.g. `airflow jobs check`).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["/opt/lakehouse/include/docker-entrypoint.sh", "healthcheck"]

# Binds to ${AIRFLOW_API_HOST:-127.0.0.1}: set AIRFLOW_API_HOST=0.0.0.0 to publish the port.
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/lakehouse/include/docker-entrypoint.sh"]
CMD ["api-server"]
