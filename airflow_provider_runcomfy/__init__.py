"""Apache Airflow provider for RunComfy's hosted generative models."""

__version__ = "0.1.0"
