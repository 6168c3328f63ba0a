"""Named transforms, including the SIP-URI → extension case."""

import pytest

from usersync.rules.transforms import TransformError, apply_chain, parse


@pytest.mark.parametrize(
    ("value", "chain", "expected"),
    [
        ("sip:1234@corp.example", ["sip_user"], "1234"),
        ("SIP:John.Smith@corp.example;transport=tls", ["sip_user"], "John.Smith"),
        ("+39 (0461) 12-34", ["digits"], "39046112" + "34"),
        ("+39 0461 123456", ["digits", "last:4"], "3456"),
        ("  Mixed Case ", ["strip", "lower"], "mixed case"),
        ("john.smith@corp.example", ["local_part", "upper"], "JOHN.SMITH"),
        ("512", ["ad_enabled"], True),
        ("514", ["ad_enabled"], False),
        ("TRUE", ["flag"], True),
        ("no", ["flag"], False),
    ],
)
def test_chains(value, chain, expected):
    assert apply_chain(value, chain) == expected


@pytest.mark.parametrize(("value", "chain"), [("@corp", ["sip_user"]), ("maybe", ["flag"]), ("x", ["ad_enabled"])])
def test_values_that_do_not_fit_raise(value, chain):
    with pytest.raises(TransformError):
        apply_chain(value, chain)


def test_parse_validates_names_and_arguments():
    assert parse("last:4") == ("last", "4")
    for bad in ("last", "last:0", "lower:2", "nope"):
        with pytest.raises(ValueError):
            parse(bad)
