import pytest

from workbench.api import ConfigError, InputError
from workbench.core.config_io import apply_overrides, build_config, parse_value


def test_parse_value_types():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2] and parse_value("adam") == "adam"


def test_overrides_nest():
    assert apply_overrides({}, ["a.b=2", "c=x"]) == {"a": {"b": 2}, "c": "x"}


def test_toml_and_overrides(tmp_path, tiny_plugin):
    f = tmp_path / "run.toml"
    f.write_text("epochs = 7\nhidden = 4\n")
    cfg = build_config(tiny_plugin, tiny_plugin.pipeline("fit"), str(f), ["hidden=9"])
    assert (cfg.epochs, cfg.hidden) == (7, 9)


@pytest.mark.parametrize("override,key", [
    ("nonsense=1", "nonsense"),        # unknown key
    ("epochs=abc", "epochs"),          # wrong type
    ("epochs=0", "epochs"),            # out of range
    ("optimizer=rmsprop", "optimizer"),  # not a choice
    ("student=resnet", "student"),     # unknown component
])
def test_bad_config_names_the_key(tiny_plugin, override, key):
    with pytest.raises(ConfigError) as err:
        build_config(tiny_plugin, tiny_plugin.pipeline("fit"), None, [override])
    assert str(err.value).startswith(key) or f"{key}:" in str(err.value)


def test_missing_and_broken_config_file(tmp_path, tiny_plugin):
    with pytest.raises(InputError, match="missing.toml: config file not found"):
        build_config(tiny_plugin, tiny_plugin.pipeline("fit"), str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3")
    with pytest.raises(InputError, match="bad.toml: not valid TOML"):
        build_config(tiny_plugin, tiny_plugin.pipeline("fit"), str(bad))
