"""A content pipeline with a person in the loop: generate, ask for approval with a link to the video, publish.

The clip lands under ``<runcomfy_output_dir>/review/``; ``ApprovalOperator`` (Airflow's human-in-the-loop, from
the standard provider) shows the link in the Airflow UI; on "Approve" the file is copied to ``published/``, on
"Reject" the publish step is skipped.

Needs Airflow 3.1+ (human-in-the-loop operators); on Airflow 3.0 this file defines no DAG and logs why.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from airflow.sdk import DAG, ObjectStoragePath, task

from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator
from airflow_provider_runcomfy.version_compat import AIRFLOW_V_3_1_PLUS

if AIRFLOW_V_3_1_PLUS:
    from airflow.providers.standard.operators.hitl import ApprovalOperator
else:  # the standard provider's human-in-the-loop operators need Airflow 3.1
    ApprovalOperator = None
    logging.getLogger(__name__).warning(
        "example_runcomfy_human_review needs Airflow 3.1+ (ApprovalOperator): this Airflow defines no such DAG"
    )

if ApprovalOperator is not None:
    with DAG(
        dag_id="example_runcomfy_human_review",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["example", "runcomfy"],
    ):
        generate = RunComfyTextToVideoOperator(
            task_id="generate",
            prompt="A barista pouring latte art in a sunlit cafe, close-up",
            output_dir="{{ var.value.get('runcomfy_output_dir', 'file:///tmp/runcomfy-outputs') }}/review",
            deferrable=True,
            poll_interval=1,
        )
        review = ApprovalOperator(
            task_id="review",
            subject="Publish this clip?",
            body=(
                "Video: {{ ti.xcom_pull(task_ids='generate')['output_urls'][0] }}\n\n"
                "Stored at {{ ti.xcom_pull(task_ids='generate')['files'][0]['uri'] }} "
                "(sha256 {{ ti.xcom_pull(task_ids='generate')['files'][0]['sha256'] }})"
            ),
            response_timeout=timedelta(days=2),
        )

        @task
        def publish(generated: dict) -> list[str]:
            published = []
            for file in generated["files"]:
                source = ObjectStoragePath(file["uri"])
                target = source.parent.parent / "published" / source.name
                target.parent.mkdir(parents=True, exist_ok=True)
                source.copy(target)
                published.append(str(target))
            return published

        generate >> review >> publish(generate.output)
