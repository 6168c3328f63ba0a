"""Rules files (as data) the tests start from."""

from __future__ import annotations


def ad_rules(name: str = "corp", conn_id: str = "corp_ldap", **source) -> dict:
    """A typical AD rules file (as data) for the generated users of devtools.ad_data."""
    return {
        "source": {"name": name, "type": "active_directory", "conn_id": conn_id, "object_path": "",
                   "filter": "(objectClass=user)", "domain": "EXAMPLE", "page_size": 500, **source},
        "schedule": {"auto": False},
        "run": {"retries": 0},
        "fields": {
            "username": {"policy": "import", "attribute": "sAMAccountName", "transforms": ["lower"]},
            "first_name": {"policy": "import", "attribute": "givenName"},
            "last_name": {"policy": "import", "attribute": "sn"},
            "email": {"policy": "import", "attribute": "mail", "transforms": ["lower"]},
            "department": {"policy": "import", "attribute": "department"},
            "extension": {"policy": "prefix", "prefix": "", "attribute": "msRTCSIP-PrimaryUserAddress",
                          "transforms": ["sip_user"]},
            "language": {"policy": "on_insert", "value": "en"},
            "enabled": {"policy": "import", "attribute": "userAccountControl", "transforms": ["ad_enabled"]},
        },
    }
