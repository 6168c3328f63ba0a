"""The source registry is the one place a source type is known: every registered type has a shipped example
that validates and round-trips, and errors in its section are located without the type tag."""

from __future__ import annotations

import pytest
import yaml

from tests.support.repo import REPO
from usersync.rules import RulesError, load_rules, parse_rules
from usersync.sources.base import Source
from usersync.sources.registry import SOURCE_TYPES

RULES = REPO / "include" / "rules"


def _examples() -> dict[str, list]:
    found: dict[str, list] = {}
    for path in sorted(RULES.glob("*.yaml")):
        found.setdefault(yaml.safe_load(path.read_text())["source"]["type"], []).append(path)
    return found


@pytest.mark.parametrize("type_name", sorted(SOURCE_TYPES))
def test_every_registered_type_round_trips_its_shipped_example(type_name):
    examples = _examples().get(type_name)
    assert examples, f"no example rules file in include/rules for source type {type_name}"
    rules = load_rules(examples[0])
    assert rules.source.type == type_name and isinstance(rules.source, SOURCE_TYPES[type_name].spec)
    again = parse_rules(rules.model_dump(mode="json"), examples[0])
    assert again == rules


@pytest.mark.parametrize("type_name", sorted(SOURCE_TYPES))
def test_an_error_in_a_source_section_is_located_without_the_type_tag(type_name):
    data = yaml.safe_load(_examples()[type_name][0].read_text())
    data["source"]["no_such_option"] = 1
    with pytest.raises(RulesError) as caught:
        parse_rules(data, "x.yaml")
    assert ("source.no_such_option", "Extra inputs are not permitted") in caught.value.problems


def test_an_entra_page_size_error_names_source_page_size():
    data = yaml.safe_load((RULES / "entra.yaml").read_text())
    data["source"]["page_size"] = 5000
    with pytest.raises(RulesError) as caught:
        parse_rules(data, "entra.yaml")
    assert [loc for loc, _ in caught.value.problems] == ["source.page_size"]


@pytest.mark.parametrize("type_name", sorted(SOURCE_TYPES))
def test_every_registered_reader_is_a_source_that_builds_itself_from_rules(type_name):
    reader = SOURCE_TYPES[type_name].reader_class()
    assert issubclass(reader, Source)
    assert "from_rules" in vars(reader), f"{reader.__name__} does not build itself from a rules file"


def test_an_unknown_type_lists_the_registered_ones():
    data = yaml.safe_load((RULES / "corp_ad.yaml").read_text())
    data["source"]["type"] = "novell"
    with pytest.raises(RulesError) as caught:
        parse_rules(data, "x.yaml")
    (loc, msg), = caught.value.problems
    assert loc == "source.type" and all(name in msg for name in SOURCE_TYPES)


@pytest.mark.parametrize("type_name", sorted(SOURCE_TYPES))
def test_what_a_type_declares_it_implements(type_name):
    """A spec's declarations are promises the reader and writer keep: delta reads need the reader to find
    removed accounts and to judge a stored position; write-back needs a complete writer."""
    from usersync.sources.writer import DirectoryWriter

    kind = SOURCE_TYPES[type_name]
    reader = kind.reader_class()
    if kind.spec.delta_anchor is not None:
        for method in ("removed", "position_holds", "describe_position"):
            assert getattr(reader, method) is not getattr(Source, method), f"{reader.__name__} lacks {method}"
    if kind.writer is not None:
        writer = kind.writer_class()
        assert issubclass(writer, DirectoryWriter) and not getattr(writer, "__abstractmethods__", None)


def test_capability_messages_list_the_types_that_declare_them():
    """Messages naming the types with a capability are read from the specs, not written out by hand."""
    import re

    from usersync.sources.spec import types_with

    def named(text: str) -> set[str]:
        return set(re.split(r", | and ", text))

    assert named(types_with(lambda spec: spec.delta_anchor is not None)) == {
        n for n, t in SOURCE_TYPES.items() if t.spec.delta_anchor is not None} == {"active_directory", "entra_id"}
    assert named(types_with(lambda spec: spec.disabled_attribute is not None)) == {
        n for n, t in SOURCE_TYPES.items() if t.spec.disabled_attribute is not None}
