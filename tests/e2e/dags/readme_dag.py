"""The README's quick start, run by ``airflow dags test`` as written there: what a new user writes on day one.

Only the DAG's id changes, and its ``default_args`` poll the fast local server every half second where the README
leaves the intervals at their defaults (10 s for an operator, 60 s for a sensor, right for real jobs).
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "README.md"
QUICK_START = re.search(r"## Quick start\n+```python\n(.*?)```", README.read_text(), re.S).group(1)
HEADER = 'with DAG(dag_id="my_clips", '
assert HEADER in QUICK_START, "the README's quick start no longer opens with the DAG this test expects"
exec(  # the README's own code
    QUICK_START.replace(
        HEADER, 'with DAG(dag_id="readme_dag", default_args={"poll_interval": 0.5, "poke_interval": 0.5}, '
    )
)
