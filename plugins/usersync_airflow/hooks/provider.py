"""Provider metadata: registers usersync's connection types (form fields, the Test button) with Airflow.

Exposed through the ``apache_airflow_provider`` entry point in pyproject.toml; custom connection types cannot
be registered from ``plugins/``.
"""

from __future__ import annotations

from usersync import __version__


def _field(label: str, kind: str, **schema) -> dict:
    return {"label": label, "schema": {"type": [kind, "null"], **schema}}


#: what every HTTP source's connection may set (Graph, SCIM, Webex)
HTTP_FIELDS = {
    "ca_certs_file": _field("CA bundle (PEM file path)", "string"),
    "timeout": _field("Timeout (s)", "number", default=60),
    "max_retries": _field("Retries on 429 / 503", "integer", default=5),
    "max_wait": _field("Longest Retry-After honoured (s)", "number", default=120),
}


def get_provider_info() -> dict:
    """Airflow's provider metadata: the connection types and their UI fields, as one literal Airflow reads."""
    return {
        "package-name": "usersync",
        "name": "usersync",
        "description": "Keeps an application's users table in line with Active Directory / LDAP.",
        "versions": [__version__],
        "connection-types": [
            {
                "hook-class-name": "usersync_airflow.hooks.ldap.LdapHook",
                "hook-name": "usersync LDAP / Active Directory",
                "connection-type": "usersync_ldap",
                "conn-fields": {
                    "security_mode": _field("Security mode", "string", default="SecureOnly",
                                            enum=["SecureOnly", "SecureThenUnsecure", "UnSecureOnly"]),
                    "start_tls": _field("Use StartTLS on the plain port", "boolean", default=False),
                    "ldaps_port": _field("LDAPS port", "integer", default=636),
                    "ldap_port": _field("Plain LDAP port", "integer", default=389),
                    "ca_certs_file": _field("CA bundle (PEM file path)", "string"),
                    "connect_timeout": _field("Connect timeout (s)", "integer", default=10),
                    "receive_timeout": _field("Receive timeout (s)", "integer", default=120),
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "extra"],
                    "relabeling": {"login": "Bind user (DN or user@domain)", "host": "Server"},
                    "placeholders": {"host": "dc1.corp.example", "login": "svc-usersync@corp.example"},
                },
            },
            {
                "hook-class-name": "usersync_airflow.hooks.axl.AxlHook",
                "hook-name": "usersync Cisco UCM (AXL)",
                "connection-type": "usersync_axl",
                "conn-fields": {
                    "axl_version": _field("AXL version", "string", default="14.0"),
                    "ca_certs_file": _field("CA bundle (PEM file path)", "string"),
                    "timeout": _field("Timeout (s)", "number", default=60),
                    "max_retries": _field("Retries on 503 / timeout", "integer", default=5),
                    "backoff_seconds": _field("First back-off (s)", "number", default=2),
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "extra"],
                    "relabeling": {"host": "CUCM publisher", "login": "AXL application user"},
                    "placeholders": {"host": "cucm-pub.corp.example", "port": "8443"},
                },
            },
            {
                "hook-class-name": "usersync_airflow.hooks.entra.EntraHook",
                "hook-name": "usersync Microsoft Entra ID (Graph)",
                "connection-type": "usersync_entra",
                "conn-fields": {
                    "certificate_key_file": _field("Certificate private key (PEM file path), instead of a secret", "string"),
                    "certificate_thumbprint": _field("Certificate thumbprint (SHA-1, hex)", "string"),
                    "authority_host": _field("Authority host", "string", default="https://login.microsoftonline.com"),
                    "graph_url": _field("Microsoft Graph URL", "string", default="https://graph.microsoft.com"),
                    **HTTP_FIELDS,
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {"host": "Tenant id", "login": "Client (application) id", "password": "Client secret"},
                    "placeholders": {"host": "contoso.onmicrosoft.com or the tenant GUID",
                                     "login": "00000000-0000-0000-0000-000000000000"},
                },
            },
            {
                "hook-class-name": "usersync_airflow.hooks.scim.ScimHook",
                "hook-name": "usersync SCIM 2.0",
                "connection-type": "usersync_scim",
                "conn-fields": {
                    **HTTP_FIELDS,
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "extra"],
                    "relabeling": {"host": "SCIM base URL", "password": "Bearer token"},
                    "placeholders": {"host": "https://scim.example.com/scim/v2"},
                },
            },
            {
                "hook-class-name": "usersync_airflow.hooks.scim.WebexHook",
                "hook-name": "usersync Cisco Webex Control Hub (SCIM)",
                "connection-type": "usersync_webex",
                "conn-fields": {
                    "org_id": _field("Organisation id (Control Hub → Account)", "string"),
                    "refresh_token": _field("Refresh token of the integration (scope identity:people_read)", "string"),
                    **HTTP_FIELDS,
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {"host": "Webex API", "login": "Client id", "password": "Client secret"},
                    "placeholders": {"host": "https://webexapis.com"},
                },
            },
            {
                "hook-class-name": "usersync_airflow.hooks.users_db.UsersDbHook",
                "hook-name": "usersync users database",
                "connection-type": "usersync_users_db",
                "conn-fields": {},
                "ui-field-behaviour": {"hidden-fields": ["extra"], "relabeling": {"schema": "Database"}, "placeholders": {}},
            },
        ],
    }
