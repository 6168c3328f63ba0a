"""Thin Airflow adapters over the ``usersync`` domain package: hooks, task callables and the DAG factory."""
