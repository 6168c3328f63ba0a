"""Thin Airflow adapters over the ``usersync`` domain package, grouped by concern: ``dag`` (the DAG factory, each
task's callable, XCom, the report task), ``hooks`` (Airflow connections, the hooks and their Test buttons, the
provider's registration), ``ui`` (the reports page and its plugin), ``runtime`` (what keeps a task's start short)
and ``cli`` (``usersync-db``). ``preload`` and ``celery_config`` at this level keep the names earlier airflow.cfg
files give."""
