"""The Airflow UI plugin: the RunComfy page and the task instance tab (``runcomfy.py`` registers them)."""
