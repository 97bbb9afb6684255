from pathlib import Path

import pytest
import yaml

from sdpflow.config import defaults_yaml, load_config, parse_overrides
from sdpflow.config.demo import DemoFlowConfig
from sdpflow.errors import ConfigError


def test_defaults_round_trip_through_yaml(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text(defaults_yaml(DemoFlowConfig))
    config = load_config(DemoFlowConfig, path)
    assert config.squares.count == 1000
    assert config.squares.chunks == 8


def test_file_then_overrides_take_precedence(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"squares": {"count": 10, "chunks": 2}}))
    config = load_config(DemoFlowConfig, path, ["squares.count=25", "report.title=hello world"])
    assert (config.squares.count, config.squares.chunks, config.report.title) == (25, 2, "hello world")


def test_unknown_key_names_key_and_file(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("squares:\n  cunt: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(DemoFlowConfig, path)
    message = str(caught.value)
    assert "squares.cunt" in message and str(path) in message and "unknown key" in message
    assert "\n" not in message


def test_wrong_type_names_key(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("squares:\n  count: many\n")
    with pytest.raises(ConfigError, match=r"squares\.count.*integer"):
        load_config(DemoFlowConfig, path)


def test_value_out_of_range():
    with pytest.raises(ConfigError, match=r"squares\.chunks"):
        load_config(DemoFlowConfig, overrides=["squares.chunks=0"])


@pytest.mark.parametrize("text, problem", [("squares: [1, 2\n", "not valid YAML at line"), ("- 1\n- 2\n", "mapping")])
def test_malformed_files(tmp_path: Path, text: str, problem: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_config(DemoFlowConfig, path)


def test_missing_file_and_bad_override(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(DemoFlowConfig, tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="not key=value"):
        parse_overrides(["squares.count"])
    assert parse_overrides(["a.b=1", "a.c=[1, 2]", "d=x"]) == {"a": {"b": 1, "c": [1, 2]}, "d": "x"}


def test_hint_names_the_pipeline_given(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("squares:\n  cunt: 3\n")
    with pytest.raises(ConfigError, match=r"see `sdpflow config show demo-flow`"):
        load_config(DemoFlowConfig, path, name="demo-flow")


def test_defaults_show_required_keys_as_null():
    from tests.engine.toy_pipeline import ToyConfig

    assert yaml.safe_load(defaults_yaml(ToyConfig)) == {
        "input": None, "env": {}, "first": {"repeat": 2}, "second": {"suffix": "!", "failures_before_success": 0}}
