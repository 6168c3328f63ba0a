"""The name airflow.cfg files of earlier releases give ``[celery] celery_config_options``
(``usersync_airflow.celery_config.CELERY_CONFIG``): the settings now live in
``usersync_airflow.runtime.celery_config``; this keeps such a configuration working (a Celery worker whose
configured module is missing does not start)."""

from usersync_airflow.runtime.celery_config import CELERY_CONFIG

__all__ = ["CELERY_CONFIG"]
