"""usersync — keeps an application's user list in line with external directories.

This package is the domain: rules, mapping, diff, apply and sources. It is plain Python and must never
import ``airflow`` (``tests/test_domain_isolation.py`` enforces it), so it can be reused and tested on its own;
the Airflow adapters live in ``usersync_airflow``.
"""

__version__ = "0.1.0"
