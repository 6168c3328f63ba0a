"""SCIM attribute paths resolved case-insensitively, as RFC 7643 §2.1 says names are: attribute, sub-attribute
and the ``primary`` / ``type`` / ``value`` / ``display`` of multi-valued attributes (no server needed)."""

from __future__ import annotations

import pytest

from usersync.sources.scim.paths import parse
from usersync.sources.scim.reader import _RESOURCE_ID

RFC_CASE = {"userName": "jdoe", "emails": [{"value": "second@work.example", "type": "work"},
                                           {"value": "first@work.example", "type": "work", "primary": True},
                                           {"value": "home@home.example", "type": "home", "display": "Home"}]}
SHOUTED = {"USERNAME": "jdoe", "Emails": [{"Value": "second@work.example", "TYPE": "work"},
                                          {"Value": "first@work.example", "TYPE": "Work", "Primary": True},
                                          {"Value": "home@home.example", "TYPE": "home", "Display": "Home"}]}


@pytest.mark.parametrize("path, value", [
    ("userName", "jdoe"),
    ('emails[type eq "work"].value', "first@work.example"),  # of two work e-mails, the primary one
    ("emails.value", "first@work.example"),
    ('emails[type eq "home"].display', "Home"),
    ('emails[type eq "home"].value', "home@home.example"),
])
def test_any_case_of_names_gives_the_value_rfc_case_gives(path, value):
    assert parse(path).resolve(RFC_CASE) == value
    assert parse(path).resolve(SHOUTED) == value


@pytest.mark.parametrize("resource_id, asked", [
    ("2819c223-7f76-453a-919d-413861904646", True), ("a1b2c3", True), ("user.name:x", True),
    (".", False), ("..", False), ("...", False), ("a/b", False), ("", False), ("a b", False),
])
def test_only_plain_resource_ids_are_put_in_a_url_path(resource_id, asked):
    assert bool(_RESOURCE_ID.fullmatch(resource_id)) is asked
