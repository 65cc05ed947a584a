"""Extra links: a button in the Airflow UI that opens what a task generated."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class RunComfyOutputLink(BaseOperatorLink):
    """Opens the first generated output (the video, for PixVerse).

    Airflow 3 computes links on the worker when the task ends and stores them for the UI, so the URL is read
    from the finished operator itself rather than fetched back from XCom.
    """

    name = "RunComfy Output"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        urls = getattr(operator, "output_urls", None)
        return urls[0] if urls else ""
