"""Throwaway Django settings for the peer in the benchmark: django-python3-ldap's ``ldap_sync_users``.

Everything comes from the environment ``bench.bench_dag`` sets (the same slapd over LDAPS, certificate checked,
and the same PostgreSQL server as ours); the mapping is the peer's usual four fields of Django's User.
"""

import os
import ssl

import ldap3

SECRET_KEY = "benchmark-only"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_python3_ldap"]
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "HOST": "127.0.0.1",
                         "PORT": os.environ["PEER_DB_PORT"], "NAME": os.environ["PEER_DB_NAME"], "USER": "postgres"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

LDAP_AUTH_URL = [f"ldaps://127.0.0.1:{os.environ['PEER_LDAPS_PORT']}"]
LDAP_AUTH_CONNECT_USE_SSL = True
LDAP_AUTH_CONNECT_ARGS = {"tls": ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=os.environ["PEER_CA"])}
LDAP_AUTH_SEARCH_BASE = os.environ["PEER_BASE"]
LDAP_AUTH_OBJECT_CLASS = "user"
LDAP_AUTH_USER_FIELDS = {"username": "sAMAccountName", "first_name": "givenName", "last_name": "sn", "email": "mail"}
LDAP_AUTH_USER_LOOKUP_FIELDS = ("username",)
LDAP_AUTH_FORMAT_USERNAME = "bench.peer_settings.bind_dn"
LDAP_AUTH_CONNECTION_USERNAME = os.environ["PEER_BIND_DN"]
LDAP_AUTH_CONNECTION_PASSWORD = os.environ["PEER_BIND_PASSWORD"]
LDAP_AUTH_RECEIVE_TIMEOUT = 600


def bind_dn(model_fields):
    """The service account is given as its DN already."""
    return model_fields["username"]
