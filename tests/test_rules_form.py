"""The console's rules form is generated from the rules model and writes changes back into the file in place: every
setting the model has is an input, the policy parts it shows agree with what ``FieldRule`` accepts, an unchanged
form leaves the file byte for byte, a change touches its own lines only, and problems are located as
``usersync rules validate`` locates them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy import create_engine

from tests.support.repo import REPO
from usersync.cli import main as usersync
from usersync.rules.edit import edited_text, new_text, text_diff
from usersync.rules.fields import FIELDS, Policy
from usersync.rules.form import (
    POLICY_PARTS,
    FormProblem,
    Input,
    RulesForm,
    form_values,
    new_rules,
    rules_form,
    settings,
)
from usersync.rules.loader import RulesError, draft_from_text, load_rules, parse_rules
from usersync.rules.model import FieldRule
from usersync.run.attribute_stats import attribute_stats
from usersync.sources.registry import SOURCE_TYPES

EXAMPLES = sorted((REPO / "include" / "rules").glob("*.yaml"))


def posted(form: RulesForm, **changes: str | None) -> dict[str, str]:
    """What a browser posts for ``form`` as rendered, with ``changes`` typed in (None: a box unchecked)."""
    out: dict[str, str] = {}
    for one in form.inputs():
        if one.fixed:
            continue
        value = one.value
        if one.widget == "checkbox":
            if value:
                out[one.path] = "on"
        elif one.widget == "lines":
            out[one.path] = "\n".join(value or [])
        elif one.widget == "yaml":
            out[one.path] = "" if value in (None, [], {}) else yaml.safe_dump(value)
        else:
            out[one.path] = "" if value is None else str(value)
    for path, value in changes.items():
        if value is None:
            out.pop(path, None)
        else:
            out[path] = value
    return out


def edit(path: Path, **changes: str | None) -> tuple[str, list]:
    text = path.read_text()
    before = load_rules(path).model_dump(mode="json")
    form = rules_form(before)
    try:
        data = settings(before, form_values(form, posted(form, **changes)))
        after = parse_rules(data, path).model_dump(mode="json")
    except FormProblem as exc:
        return text, [(exc.path, exc.reason)]
    except RulesError as exc:
        return text, exc.problems
    return edited_text(text, before, after, {i.path: i for i in form.inputs()}), []


def _leaves(data, prefix=""):
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), data


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_setting_of_the_model_is_an_input_and_an_unchanged_form_leaves_the_file_as_it_was(path):
    effective = load_rules(path).model_dump(mode="json")
    form = rules_form(effective)
    paths = {i.path for i in form.inputs()}
    for leaf, value in _leaves(effective):
        if leaf.startswith("fields.") and value in (None, []):
            continue  # a part of a field rule the field does not take (a fixed value of an e-mail)
        covered = leaf in paths or any(leaf.startswith(p + ".") for p in paths)
        assert covered, f"{leaf} has no input"
    same, problems = edit(path)
    assert problems == [] and same == path.read_text()


def test_a_new_option_in_the_model_appears_in_the_form_with_its_help_and_default(monkeypatch):
    from usersync.rules import model

    class ReportWithMore(model.ReportSpec):
        #: how many lines a report may have at most
        max_lines: int = 5000

    monkeypatch.setitem(model.Rules.model_fields, "report", model.Rules.model_fields["report"])
    field = model.Rules.model_fields["report"]
    monkeypatch.setattr(field, "annotation", ReportWithMore)
    form = rules_form(load_rules(EXAMPLES[0]).model_dump(mode="json"))
    (one,) = [i for i in form.inputs() if i.path == "report.max_lines"]
    assert (one.widget, one.default, one.integer) == ("number", 5000, True)
    assert one.help == "how many lines a report may have at most"


def test_each_field_offers_only_the_policies_it_allows_and_yes_no_values_are_checkboxes():
    form = rules_form(load_rules(REPO / "include" / "rules" / "corp_ad.yaml").model_dump(mode="json"))
    rows = {r.name: r for r in form.fields}
    assert set(rows) == set(FIELDS)
    for name, row in rows.items():
        policy = next(i for i in row.inputs if i.name == "policy")
        assert set(policy.choices) == {p.value for p in FIELDS[name].policies}
        values = [i for i in row.inputs if i.name == "value"]
        assert bool(values) == FIELDS[name].constants
        if values:
            assert values[0].widget == ("checkbox" if FIELDS[name].kind.value == "bool" else "text")


@pytest.mark.parametrize("policy", [p.value for p in Policy])
def test_the_parts_shown_per_policy_are_those_field_rule_accepts(policy):
    sample = {"value": "x", "attribute": "mail", "prefix": "0", "transforms": ["lower"], "on_clash": "skip"}
    needs = {"on_insert": {"value"}, "import": {"attribute"}, "prefix": {"attribute", "prefix"}, "keep": set(),
             "default_if_empty": {"attribute"}}[policy]
    FieldRule.model_validate({"policy": policy, **{k: sample[k] for k in needs}})  # what the policy needs: shown
    assert needs <= set(POLICY_PARTS[policy])
    for part in set(sample) - set(POLICY_PARTS[policy]) - {"on_clash"}:
        with pytest.raises(ValidationError):
            FieldRule.model_validate({"policy": policy, **{k: sample[k] for k in needs}, part: sample[part]})


def test_a_policy_and_a_filter_changed_touch_their_own_lines_keep_the_comments_and_validate(tmp_path):
    path = tmp_path / "corp_ad.yaml"
    path.write_text((REPO / "include" / "rules" / "corp_ad.yaml").read_text())
    new, problems = edit(path, **{"fields.email.policy": "default_if_empty",
                                  "source.filter": "(&(objectCategory=person)(objectClass=user)(mail=*))"})
    assert problems == []
    diff = text_diff(path.read_text(), new, "a", "b")
    removed = [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert removed == ['-  filter: "(&(objectCategory=person)(objectClass=user))"',
                       "-  email:                  {policy: import, attribute: mail, transforms: [lower]}"]
    assert added == ['+  filter: "(&(objectCategory=person)(objectClass=user)(mail=*))"',
                     "+  email: {policy: default_if_empty, attribute: mail, transforms: [lower]}"]
    path.write_text(new)
    assert usersync(["rules", "validate", str(path)]) == 0
    assert load_rules(path).fields["email"].policy is Policy.DEFAULT_IF_EMPTY
    assert "# usersync rules for one source" in new  # the comments stay


def test_bad_values_are_located_as_the_validator_locates_them(tmp_path):
    path = REPO / "include" / "rules" / "corp_ad.yaml"
    _same, problems = edit(path, **{"source.filter": "(objectClass=user"})
    assert problems == [("source.filter", "not an LDAP filter (unbalanced or missing parentheses): '(objectClass=user'")]
    _same, problems = edit(path, **{"source.page_size": "0"})
    assert [loc for loc, _msg in problems] == ["source.page_size"]
    _same, problems = edit(path, **{"fields.language.value": None, "fields.language.policy": "on_insert"})
    assert problems == [("fields.language", "'on_insert' needs a 'value' (and no attribute)")]
    _same, problems = edit(path, **{"notify": "- {type: slack"})
    assert problems and problems[0][0] == "notify" and "not valid YAML" in problems[0][1]


def test_an_on_insert_flag_unchecked_is_false_and_a_cleared_optional_setting_leaves_the_file(tmp_path):
    path = tmp_path / "corp_ad.yaml"
    path.write_text((REPO / "include" / "rules" / "corp_ad.yaml").read_text())
    new, problems = edit(path, **{"fields.voicemail_enabled.value": None, "report.directory": "/srv/reports"})
    assert problems == []
    path.write_text(new)
    rules = load_rules(path)
    assert rules.fields["voicemail_enabled"].value is False and rules.report.directory == "/srv/reports"
    back, problems = edit(path, **{"report.directory": ""})
    assert problems == [] and "directory:" not in back.split("report:")[1].split("alarms:")[0].replace("# directory", "")


@pytest.mark.parametrize("source_type", sorted(SOURCE_TYPES))
def test_a_new_source_from_the_types_example_validates_and_reads_back(source_type, tmp_path):
    data = new_rules(source_type, "newsrc", None if source_type == "csv" else "usersync_newsrc")
    path = tmp_path / "newsrc.yaml"
    path.write_text(new_text(data))
    rules = load_rules(path)
    assert rules.source.type == source_type and rules.schedule.auto is False
    assert {n: r.model_dump(exclude_defaults=True) for n, r in rules.fields.items() if r.policy is not Policy.KEEP} == \
        {n: FieldRule.model_validate(r).model_dump(exclude_defaults=True)
         for n, r in SOURCE_TYPES[source_type].spec.example_fields.items()}
    assert usersync(["rules", "validate", str(path)]) == 0


def test_draft_rules_sent_with_a_run_keep_the_live_source_connection_and_target():
    live = load_rules(REPO / "include" / "rules" / "corp_ad.yaml")
    text = (REPO / "include" / "rules" / "corp_ad.yaml").read_text()
    assert draft_from_text(text.replace("partitions: 2", "partitions: 3"), live).source.partition_count == 3
    with pytest.raises(RulesError, match="keep the live source's type and connection"):
        draft_from_text(text.replace("conn_id: usersync_corp_ad", "conn_id: someone_elses"), live)
    with pytest.raises(RulesError, match="keep the live 'target'"):
        draft_from_text(text.replace("conn_id: usersync_target", "conn_id: other_db"), live)


def test_attribute_statistics_of_the_last_read(tmp_path):
    (tmp_path / "records").mkdir()
    table = pa.table({"account": ["a", "b", "c", "d"], "problem": [None] * 4,
                      "mail": ["a@x", "", None, "d@x"], "sn": ["Smith", "Smith", "Rossi", "Smith"]})
    pq.write_table(table.slice(0, 2), tmp_path / "records" / "part-000.parquet")
    pq.write_table(table.slice(2), tmp_path / "records" / "part-001.parquet")
    stats = attribute_stats(tmp_path, ["mail", "sn", "ipPhone"])
    assert set(stats) == {"mail", "sn"}
    assert (stats["mail"].rows, stats["mail"].empty, stats["mail"].distinct) == (4, 2, 2)
    assert (stats["sn"].empty, stats["sn"].distinct, stats["sn"].examples) == (0, 2, ("Smith", "Rossi"))
    assert stats["mail"].line() == "50% empty, 2 distinct of 4; e.g. a@x, d@x"


def test_the_admin_log_keeps_who_did_what_and_each_sources_last_test(tmp_path):
    from datetime import UTC, datetime, timedelta

    from usersync.store.admin_log import AdminAction, last_of, recent, record

    engine = create_engine(f"sqlite:///{tmp_path / 'users.db'}")
    t0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    record(engine, AdminAction(t0, "alice", "corp", "test", "bound; 30 entries", ok=True))
    record(engine, AdminAction(t0 + timedelta(minutes=1), "bob", "corp", "live", "corp.yaml replaced",
                               detail={"diff": "-a\n+b"}, before_text="a", after_text="b"))
    record(engine, AdminAction(t0 + timedelta(minutes=2), "alice", "corp", "test", "bind refused", ok=False))
    record(engine, AdminAction(t0 + timedelta(minutes=3), "alice", "hr", "test", "bound; 5 entries"))
    last = last_of(engine, "test", ["corp", "hr", "none"])
    assert {s: (r["ok"], r["summary"]) for s, r in last.items()} == {"corp": (False, "bind refused"),
                                                                     "hr": (True, "bound; 5 entries")}
    rows = recent(engine, "corp")
    assert [(r["by"], r["action"]) for r in rows] == [("alice", "test"), ("bob", "live"), ("alice", "test")]
    assert rows[1]["detail"] == {"diff": "-a\n+b"} and rows[1]["at"] == t0 + timedelta(minutes=1)
    assert "before_text" not in rows[1]


def test_inputs_carry_their_bounds_from_the_model():
    form = rules_form(load_rules(REPO / "include" / "rules" / "corp_ad.yaml").model_dump(mode="json"))
    by_path: dict[str, Input] = {i.path: i for i in form.inputs()}
    assert (by_path["schedule.hour"].minimum, by_path["schedule.hour"].maximum) == (0, 23)
    assert by_path["safety.deletion"].choices == ("delete", "disable", "keep")
    assert by_path["safety.max_read_drop_percent"].nullable and by_path["source.name"].fixed
