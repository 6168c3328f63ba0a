"""Command lines over Airflow connections: ``usersync-db``."""
