from usersync_airflow.hooks.ldap import LdapHook
from usersync_airflow.hooks.users_db import UsersDbHook

__all__ = ["LdapHook", "UsersDbHook"]
