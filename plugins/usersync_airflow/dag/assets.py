"""The Airflow Asset a sync DAG emits after a live run wrote to the users table: one per target connection,
so downstream DAGs (phone provisioning, licences) can run when the user list changed::

    from usersync_airflow.dag.assets import users_asset

    @dag(schedule=[users_asset("usersync_target")])
    def provision_phones(): ...

The event's ``extra`` carries the source, the run id and what was written (inserted / updated / deleted /
disabled). A dry run, a blocked or failed run, and a live run that wrote nothing emit no event.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias


def users_asset(target_conn_id: str) -> Asset:
    return Asset(name=f"usersync_users__{target_conn_id}", uri=f"usersync://{target_conn_id}/users",
                 group="usersync")


def users_alias(target_conn_id: str) -> AssetAlias:
    """The ``apply`` task's outlet: through an alias the task decides while it runs whether there is an event
    (only when it wrote), instead of a separate task that would cost the run one more hop."""
    return AssetAlias(name=f"usersync_users_written__{target_conn_id}", group="usersync")
