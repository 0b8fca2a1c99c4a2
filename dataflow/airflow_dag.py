"""Airflow / Cloud Composer: a daily export of the latest release with the Flex Template.

Copy this file into the Composer environment's `dags/` folder and set the Airflow
variables it reads (Admin > Variables): `segments_project`, `segments_region`,
`segments_bucket`, `segments_template` (the template spec, gs://.../segments-export.json),
`segments_image` (the template image, for the workers) and `segments_release` (the release
URI, e.g. gs://BUCKET/releases/latest.json). Needs apache-airflow-providers-google
(installed in Composer). Each run writes its own folder, `exports/{{ ds }}`, because a
template launch does not clear an earlier export in its output (docs/dataflow.md).
Incremental exports are covered by `--since` (see README).

This file is only compiled by the test suite (`tests/unit/test_scheduling.py`); Airflow is
not one of the project's dependencies.
"""

from __future__ import annotations

import datetime

from airflow import DAG
from airflow.models import Variable
from airflow.providers.google.cloud.operators.dataflow import (
    DataflowStartFlexTemplateOperator,
)

PROJECT = Variable.get("segments_project", default_var="my-project")
REGION = Variable.get("segments_region", default_var="europe-west1")
BUCKET = Variable.get("segments_bucket", default_var="my-bucket")

with DAG(
    dag_id="segments_export",
    schedule="0 3 * * *",  # 03:00 UTC every day
    start_date=datetime.datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # never two exports at once
    tags=["segments"],
) as dag:
    DataflowStartFlexTemplateOperator(
        task_id="export",
        project_id=PROJECT,
        location=REGION,
        wait_until_finished=True,  # the task fails when the job fails
        body={
            "launchParameter": {
                "jobName": "segments-export-{{ ds_nodash }}",
                "containerSpecGcsPath": Variable.get(
                    "segments_template",
                    default_var=f"gs://{BUCKET}/templates/segments-export.json"),
                "parameters": {
                    "release": Variable.get(
                        "segments_release", default_var=f"gs://{BUCKET}/releases/latest.json"),
                    "output": f"gs://{BUCKET}/exports/{{{{ ds }}}}",
                    "config": "/template/configs/dataflow.yaml",
                    "sdk_container_image": Variable.get("segments_image", default_var=""),
                },
                "environment": {
                    "tempLocation": f"gs://{BUCKET}/tmp",
                    "maxWorkers": 10,
                },
            }
        },
    )
