from pathlib import Path

import pytest
import yaml

from xlsafety.errors import ConfigError
from xlsafety.study import (
    check_study,
    coerce_command_line_values,
    configuration_id,
    configurations,
    fill_defaults,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "config" / "schema" / "config.schema.yaml").read_text())


def study(**overrides) -> dict:
    """A valid config with schema defaults, changed by `overrides`."""
    config = {
        "models": {
            "chat-model": {"source": "embedded:smollm2-135m-instruct"},
            "base-model": {"source": "embedded:gemma3-270m", "prompt_format": "raw", "raw_template": "Q: {prompt}\nA:"},
        },
        "decoding": {"greedy": {"temperature": 0}, "warm": {"temperature": 0.7, "top_p": 0.9, "passes": 3}},
    }
    config.update(overrides)
    return fill_defaults(config, SCHEMA)


def test_defaults_filled_in_named_entries():
    config = study()

    assert config["models"]["chat-model"]["prompt_format"] == "chat"
    assert config["decoding"]["greedy"]["max_new_tokens"] == 64
    assert config["languages"][0] == "en"
    assert config["irt"]["model"] == "multigroup-2pl"


def test_empty_list_runs_every_pair():
    expanded = configurations(study())

    assert sorted(expanded) == [
        "base-model_greedy",
        "base-model_warm",
        "chat-model_greedy",
        "chat-model_warm",
    ]
    assert expanded["chat-model_warm"]["passes"] == 3


def test_declared_pairs_only():
    config = study(configurations=[{"model": "chat-model", "decoding": ["warm"]}])

    assert list(configurations(config)) == ["chat-model_warm"]


def test_slug_is_readable():
    assert configuration_id("smollm2-135m", "greedy") == "smollm2-135m_greedy"


def test_default_configs_pass_checks():
    for name in ("config.yaml", "multijail.yaml"):
        config = fill_defaults(yaml.safe_load((ROOT / "config" / name).read_text()), SCHEMA)
        check_study(config)


def test_undefined_model_rejected():
    config = study(configurations=[{"model": "absent", "decoding": "greedy"}])

    with pytest.raises(ConfigError, match=r"configurations\[0\]\.model: model 'absent'"):
        check_study(config)


def test_undefined_decoding_rejected():
    config = study(configurations=[{"model": "chat-model", "decoding": ["hot"]}])

    with pytest.raises(ConfigError, match=r"configurations\[0\]\.decoding: variant 'hot'"):
        check_study(config)


def test_base_model_as_chat_rejected():
    config = study()
    config["models"]["base-model"]["prompt_format"] = "chat"

    with pytest.raises(ConfigError, match=r"models\.base-model\.prompt_format.*no chat template.*prompt_format: raw"):
        check_study(config)


def test_raw_template_without_placeholder_rejected():
    config = study()
    config["models"]["base-model"]["raw_template"] = "Answer:"

    with pytest.raises(ConfigError, match=r"models\.base-model\.raw_template"):
        check_study(config)


def test_greedy_with_passes_rejected():
    config = study()
    config["decoding"]["greedy"]["passes"] = 3

    with pytest.raises(ConfigError, match=r"decoding\.greedy\.passes"):
        check_study(config)


def test_reference_language_must_be_studied():
    with pytest.raises(ConfigError, match="reference_language"):
        check_study(study(languages=["th", "zh"]))


def test_unknown_language_rejected():
    with pytest.raises(ConfigError, match=r"no metadata for \['xx'\]"):
        check_study(study(languages=["en", "xx"]))


def test_names_with_separator_rejected():
    config = study()
    config["decoding"]["very_hot"] = config["decoding"].pop("warm")

    with pytest.raises(ConfigError, match=r"decoding\.very_hot"):
        check_study(config)


def test_unknown_embedded_model_rejected():
    config = study()
    config["models"]["chat-model"]["source"] = "embedded:gpt-9"

    with pytest.raises(ConfigError, match=r"models\.chat-model\.source: unknown embedded model 'gpt-9'"):
        check_study(config)


def test_command_line_strings_get_schema_types():
    config = {
        "dataset": {"source": "data.csv", "prompt_limit": "12"},
        "decoding": {"warm": {"temperature": "0.7", "passes": "3", "system_prompt": "null"}},
        "irt": {"anchors": ["1", "2"]},
    }
    coerce_command_line_values(config, SCHEMA)

    assert config["dataset"] == {"source": "data.csv", "prompt_limit": 12}
    assert config["decoding"]["warm"] == {"temperature": 0.7, "passes": 3, "system_prompt": "null"}
    assert config["irt"]["anchors"] == [1, 2]
