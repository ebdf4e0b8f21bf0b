# Image for the scheduler, DAG processor, API server and Spark jobs (client mode).
# The Spark jars come from the same include/pom.xml as `make jars`; nothing is
# downloaded when a Spark session starts.
FROM python:3.11-slim-bookworm

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    APP_HOME=/opt/lakehouse \
    AIRFLOW_HOME=/opt/airflow \
    JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64

RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless maven procps tini \
 && rm -rf /var/lib/apt/lists/*

WORKDIR ${APP_HOME}

# Jars first: they change least often, so this layer stays cached.
COPY include/pom.xml include/pom.xml
RUN mvn -q -B -f include/pom.xml package \
 && rm -rf /root/.m2 \
 && apt-get purge -y maven && apt-get autoremove -y

COPY requirements.txt .
RUN pip install --no-deps -r requirements.txt

COPY spark_jobs/ spark_jobs/
COPY dags/ dags/
COPY plugins/ plugins/
COPY expectations/ expectations/
COPY include/ include/

ENV PYTHONPATH=${APP_HOME} \
    LAKEHOUSE_JARS_DIR=${APP_HOME}/.cache/jars \
    AIRFLOW__CORE__DAGS_FOLDER=${APP_HOME}/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=${APP_HOME}/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

RUN useradd --create-home --uid 50000 lakehouse && mkdir -p ${AIRFLOW_HOME} && chown -R lakehouse ${AIRFLOW_HOME}
USER lakehouse

ENTRYPOINT ["/usr/bin/tini", "--", "airflow"]
CMD ["api-server"]
