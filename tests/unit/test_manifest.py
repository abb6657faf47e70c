"""Integration manifest validation (control-plane spec §6)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from clawgate.integrations import Manifest, ManifestError, load_manifest_file, validate_manifest


def base(**overrides: Any) -> dict[str, Any]:
    """Return a minimal valid manifest with overrides applied."""
    data: dict[str, Any] = {"id": "github", "version": "1.4.0", "name": "GitHub"}
    data.update(overrides)
    return data


def errors_of(data: Any) -> list[dict[str, str]]:
    """Return the errors validation reports for ``data``."""
    with pytest.raises(ManifestError) as info:
        validate_manifest(data)
    return [{"path": e["path"], "message": e["message"]} for e in info.value.errors]


def paths_of(data: Any) -> list[str]:
    """Return the error paths validation reports for ``data``."""
    return [e["path"] for e in errors_of(data)]


def test_spec_example_is_valid() -> None:
    m = validate_manifest(
        {
            "manifest_version": 1,
            "id": "github",
            "version": "1.4.0",
            "name": "GitHub",
            "capabilities": ["integrations"],
            "depends_on": [],
            "config_schema": {
                "type": "object",
                "required": ["org", "token"],
                "properties": {
                    "org": {"type": "string"},
                    "token": {"type": "string", "x-secret": True},
                },
            },
            "commands": [{"name": "github.sync", "timeout_ms": 60000}],
        }
    )
    assert isinstance(m, Manifest)
    assert m.secret_fields() == ("token",)
    assert m.command("github.sync") is not None
    assert m.command("github.sync").timeout_ms == 60000  # type: ignore[union-attr]


def test_defaults_are_applied() -> None:
    m = validate_manifest(base())
    assert m.manifest_version == 1
    assert m.capabilities == ("integrations",)
    assert m.depends_on == ()
    assert m.commands == ()
    assert dict(m.config_schema) == {"type": "object"}
    assert m.secret_fields() == ()


def test_command_timeout_defaults_to_30s() -> None:
    m = validate_manifest(base(commands=[{"name": "a.b"}]))
    assert m.commands[0].timeout_ms == 30000


def test_manifest_is_frozen() -> None:
    m = validate_manifest(base(config_schema={"type": "object", "properties": {}}))
    with pytest.raises(AttributeError):
        m.id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        m.config_schema["type"] = "array"  # type: ignore[index]


def test_to_dict_round_trips() -> None:
    m = validate_manifest(base(commands=[{"name": "x", "params_schema": {"type": "object"}}]))
    assert validate_manifest(m.to_dict()) == m


def test_root_must_be_object() -> None:
    assert errors_of([1]) == [{"path": "", "message": "manifest must be an object, found array"}]


@pytest.mark.parametrize("value", [2, 0, "1", True, 1.0])
def test_manifest_version_must_be_1(value: Any) -> None:
    assert paths_of(base(manifest_version=value)) == ["manifest_version"]


@pytest.mark.parametrize("key", ["id", "version", "name"])
def test_required_fields(key: str) -> None:
    data = base()
    del data[key]
    assert errors_of(data) == [{"path": key, "message": "is required"}]


@pytest.mark.parametrize("ident", ["GitHub", "1abc", "a_b", "", "a" * 64, "-a"])
def test_bad_ids_are_rejected(ident: str) -> None:
    assert paths_of(base(id=ident)) == ["id"]


def test_longest_id_is_accepted() -> None:
    assert validate_manifest(base(id="a" * 63)).id == "a" * 63


@pytest.mark.parametrize("version", ["1.0.0", "0.0.1-alpha.1+build.5", "10.20.30", "1.0.0-rc.1"])
def test_semver_versions_are_accepted(version: str) -> None:
    assert validate_manifest(base(version=version)).version == version


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.0.0", "1.0.0-01", "1.0.0+", ""])
def test_non_semver_versions_are_rejected(version: str) -> None:
    errs = errors_of(base(version=version))
    assert [e["path"] for e in errs] == ["version"]
    assert "SemVer 2.0.0" in errs[0]["message"]


@pytest.mark.parametrize("name", ["", "x" * 81])
def test_name_length_is_1_to_80(name: str) -> None:
    errs = errors_of(base(name=name))
    assert errs == [{"path": "name", "message": f"must have 1 to 80 characters, found {len(name)}"}]


def test_description_at_most_2000() -> None:
    validate_manifest(base(description="d" * 2000))
    assert paths_of(base(description="d" * 2001)) == ["description"]
    assert paths_of(base(description=5)) == ["description"]


def test_capabilities_rules() -> None:
    assert paths_of(base(capabilities=[])) == ["capabilities"]
    assert paths_of(base(capabilities=[f"c{i}" for i in range(17)])) == ["capabilities"]
    assert paths_of(base(capabilities=["ok", "Bad"])) == ["capabilities[1]"]
    assert paths_of(base(capabilities=["a.b", "a.b"])) == ["capabilities[1]"]
    assert paths_of(base(capabilities="integrations")) == ["capabilities"]
    assert validate_manifest(base(capabilities=["a.b-c", "x_y"])).capabilities == ("a.b-c", "x_y")


def test_config_schema_root_must_be_object_type() -> None:
    assert paths_of(base(config_schema={"type": "array"})) == ["config_schema.type"]
    assert paths_of(base(config_schema={})) == ["config_schema.type"]
    assert paths_of(base(config_schema=[])) == ["config_schema"]


def test_secret_must_be_a_string_property() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "x-secret": True}}}
    assert paths_of(base(config_schema=schema)) == ["config_schema.properties.n.type"]


@pytest.mark.parametrize("key", ["default", "const", "enum", "examples"])
def test_secret_must_not_carry_values(key: str) -> None:
    prop = {"type": "string", "x-secret": True, key: "hunter2-secret-value"}
    errs = errors_of(base(config_schema={"type": "object", "properties": {"tok": prop}}))
    assert [e["path"] for e in errs] == [f"config_schema.properties.tok.{key}"]
    assert "hunter2" not in errs[0]["message"]


def test_secret_values_are_never_echoed() -> None:
    secret = "sk-live-abcdef0123456789"
    prop = {
        "type": "string",
        "x-secret": True,
        "default": secret,
        "enum": [secret],
        "examples": [secret],
        "const": secret,
    }
    errs = errors_of(base(config_schema={"type": "object", "properties": {"tok": prop}}))
    assert len(errs) == 4
    assert secret not in str(errs)


def test_nested_x_secret_is_rejected() -> None:
    schema = {
        "type": "object",
        "properties": {
            "outer": {
                "type": "object",
                "properties": {"inner": {"type": "string", "x-secret": True}},
            }
        },
        "$defs": {"d": {"x-secret": True}},
        "x-secret": True,
    }
    assert sorted(paths_of(base(config_schema=schema))) == [
        "config_schema.$defs.d.x-secret",
        "config_schema.properties.outer.properties.inner.x-secret",
        "config_schema.x-secret",
    ]


def test_x_secret_false_is_not_secret() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer", "x-secret": False}}}
    assert validate_manifest(base(config_schema=schema)).secret_fields() == ()


def test_x_secret_must_be_boolean() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "x-secret": "yes"}}}
    assert paths_of(base(config_schema=schema)) == ["config_schema.properties.a.x-secret"]


def test_depends_on_rules() -> None:
    assert paths_of(base(depends_on=["a", "a"])) == ["depends_on[1]"]
    assert paths_of(base(depends_on=["github"])) == ["depends_on[0]"]
    assert paths_of(base(depends_on=["Not_an_id"])) == ["depends_on[0]"]
    assert validate_manifest(base(depends_on=["slack"])).depends_on == ("slack",)


def test_command_rules() -> None:
    cmds = [
        {"name": "ok.one"},
        {"name": "Bad-Name"},
        {"name": "ok.one"},
        {"name": "t", "timeout_ms": 999},
        {"name": "u", "timeout_ms": 600001},
        {"name": "v", "timeout_ms": True},
        {"timeout_ms": 1000},
        "x",
        {"name": "w", "params_schema": []},
    ]
    assert paths_of(base(commands=cmds)) == [
        "commands[1].name",
        "commands[2].name",
        "commands[3].timeout_ms",
        "commands[4].timeout_ms",
        "commands[5].timeout_ms",
        "commands[6].name",
        "commands[7]",
        "commands[8].params_schema",
    ]


def test_command_timeout_bounds_are_inclusive() -> None:
    m = validate_manifest(
        base(commands=[{"name": "a", "timeout_ms": 1000}, {"name": "b", "timeout_ms": 600000}])
    )
    assert [c.timeout_ms for c in m.commands] == [1000, 600000]


def test_timeout_message_states_rule_and_value() -> None:
    errs = errors_of(base(commands=[{"name": "a"}, {"name": "b", "timeout_ms": 5}]))
    assert errs == [
        {
            "path": "commands[1].timeout_ms",
            "message": "must be an integer from 1000 to 600000, found 5",
        }
    ]


def test_unknown_top_level_keys_error_except_x_prefixed() -> None:
    assert paths_of(base(homepage="x")) == ["homepage"]
    assert validate_manifest(base(**{"x-vendor": {"a": 1}})).id == "github"


def test_all_errors_are_reported_together() -> None:
    data = {
        "manifest_version": 2,
        "id": "Bad",
        "version": "1",
        "name": "",
        "capabilities": [],
        "commands": [{"name": "a"}, {"name": "a", "timeout_ms": 1}],
        "surprise": True,
    }
    assert sorted(paths_of(data)) == sorted(
        [
            "surprise",
            "manifest_version",
            "id",
            "version",
            "name",
            "capabilities",
            "commands[1].name",
            "commands[1].timeout_ms",
        ]
    )


def test_error_str_names_first_error_and_count() -> None:
    with pytest.raises(ManifestError) as info:
        validate_manifest({"id": "x"})
    assert str(info.value).startswith("version: is required")
    assert "(+1 more)" in str(info.value)


def test_long_strings_are_summarised_not_echoed() -> None:
    errs = errors_of(base(id="X" * 300))
    assert "a string of 300 characters" in errs[0]["message"]


def test_load_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "clawgate-integration.toml"
    path.write_text(
        'id = "github"\nversion = "1.4.0"\nname = "GitHub"\n'
        '[config_schema]\ntype = "object"\n'
        '[config_schema.properties.token]\ntype = "string"\n"x-secret" = true\n'
        '[[commands]]\nname = "github.sync"\ntimeout_ms = 60000\n'
    )
    m = load_manifest_file(path)
    assert m.secret_fields() == ("token",)
    assert m.commands[0].name == "github.sync"


def test_load_invalid_toml_reports_parse_error(tmp_path: Path) -> None:
    path = tmp_path / "clawgate-integration.toml"
    path.write_text("id = \n")
    with pytest.raises(ManifestError) as info:
        load_manifest_file(path)
    assert info.value.errors[0]["message"].startswith("invalid TOML")


def test_load_toml_reports_rule_errors(tmp_path: Path) -> None:
    path = tmp_path / "clawgate-integration.toml"
    path.write_text('id = "github"\nversion = "x"\nname = "G"\n')
    with pytest.raises(ManifestError) as info:
        load_manifest_file(path)
    assert [e["path"] for e in info.value.errors] == ["version"]


HAVE_YAML = importlib.util.find_spec("yaml") is not None


@pytest.mark.skipif(HAVE_YAML, reason="PyYAML is installed")
def test_yaml_without_pyyaml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "clawgate-integration.yaml"
    path.write_text("id: github\n")
    with pytest.raises(ManifestError) as info:
        load_manifest_file(path)
    assert "PyYAML" in info.value.errors[0]["message"]


@pytest.mark.skipif(not HAVE_YAML, reason="PyYAML is not installed")
def test_yaml_duplicate_keys_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "clawgate-integration.yaml"
    path.write_text("id: github\nid: other\nversion: 1.0.0\nname: G\n")
    with pytest.raises(ManifestError) as info:
        load_manifest_file(path)
    assert "duplicate key" in info.value.errors[0]["message"]


def test_unknown_suffix_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("{}")
    with pytest.raises(ManifestError):
        load_manifest_file(path)
