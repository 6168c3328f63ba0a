from usersync_airflow.hooks.axl import AxlHook
from usersync_airflow.hooks.entra import EntraHook
from usersync_airflow.hooks.ldap import LdapHook
from usersync_airflow.hooks.scim import ScimHook, WebexHook
from usersync_airflow.hooks.users_db import UsersDbHook

__all__ = ["AxlHook", "EntraHook", "LdapHook", "ScimHook", "UsersDbHook", "WebexHook"]
