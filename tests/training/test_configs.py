"""``--set key=value`` overrides and JSON round trips of configs."""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

import pytest

from dilemmas.training.analytic import PRESETS, AnalyticConfig
from dilemmas.training.configs import (
    apply_overrides,
    config_from_json,
    config_to_json,
    parse_overrides,
    parse_value,
)


@dataclasses.dataclass(frozen=True)
class Inner:
    steps: int = 10
    scale: float = 1.0


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str = "x"
    flag: bool = False
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[float, float] = (0.0, 1.0)
    maybe: int | None = None
    mode: Literal["a", "b"] = "a"
    inner: Inner = Inner()

    def __post_init__(self):
        if self.inner.steps < 1:
            raise ValueError(f"inner.steps must be >= 1, got {self.inner.steps}")


def test_values_are_parsed_by_the_annotated_type():
    cfg = apply_overrides(
        PRESETS["analytic-shaping"],
        ["iterations=50", "gamma=0.9", "payoffs=3,0,5,1", "init=tft", "seed=1_000"],
    )
    assert cfg.iterations == 50 and isinstance(cfg.iterations, int)
    assert cfg.gamma == 0.9
    assert cfg.payoffs == (3.0, 0.0, 5.0, 1.0)
    assert cfg.init == "tft" and cfg.seed == 1000
    assert cfg.name == "analytic-shaping"  # untouched fields keep the preset's


@pytest.mark.parametrize(
    ("text", "tp", "expected"),
    [
        ("true", bool, True),
        ("0", bool, False),
        ("No", bool, False),
        ("-3", int, -3),
        ("1e-3", float, 1e-3),
        ("hello world", str, "hello world"),
        ("(1, -1, 2, 0)", tuple[float, ...], (1.0, -1.0, 2.0, 0.0)),
        ("[4,5]", tuple[int, int], (4, 5)),
        ("none", int | None, None),
        ("7", int | None, 7),
        ("b", Literal["a", "b"], "b"),
    ],
)
def test_parse_value(text, tp, expected):
    value = parse_value(text, tp)
    assert value == expected and type(value) is type(expected)


def test_nested_dataclasses_take_dotted_keys():
    cfg = apply_overrides(Outer(), ["inner.steps=3", "flag=yes", "sizes=4,5,6"])
    assert cfg.inner == Inner(steps=3) and cfg.flag and cfg.sizes == (4, 5, 6)
    with pytest.raises(ValueError, match="inner.steps must be >= 1"):
        apply_overrides(Outer(), ["inner.steps=0"])
    with pytest.raises(ValueError, match="group of settings.*inner.steps"):
        apply_overrides(Outer(), ["inner=3"])


def test_unknown_key_lists_valid_keys_and_close_matches():
    with pytest.raises(ValueError) as err:
        apply_overrides(PRESETS["analytic-shaping"], ["iteration=5"])
    message = str(err.value)
    assert "unknown config key 'iteration'" in message
    assert "did you mean iterations" in message
    assert "eta_meta" in message  # the valid keys are listed
    with pytest.raises(ValueError, match="unknown config key 'inner.nope'"):
        apply_overrides(Outer(), ["inner.nope=1"])


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("iterations=ten", r"cannot set iterations='ten': expected int"),
        ("gamma=high", r"cannot set gamma='high': expected float"),
        ("payoffs=1,2,3", r"payoffs.*expected 4 comma-separated values, got 3"),
        ("iterations", r"expected key=value, got 'iterations'"),
    ],
)
def test_conversion_errors_name_key_value_and_type(override, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(AnalyticConfig(), [override])


def test_impossible_values_fail_in_the_configs_own_validation():
    with pytest.raises(ValueError, match=r"iterations=0.*iterations must be an int"):
        apply_overrides(AnalyticConfig(), ["iterations=0"])
    with pytest.raises(ValueError, match="pool_size >= 2"):
        apply_overrides(AnalyticConfig(), ["p_naive=0.5"])
    # ...but a combination that is valid as a whole passes
    cfg = apply_overrides(AnalyticConfig(), ["p_naive=0.5", "pool_size=2"])
    assert cfg.pool_size == 2


def test_later_overrides_win_and_parse_overrides_keeps_typed_values():
    values = parse_overrides(AnalyticConfig(), ["iterations=3", "iterations=4"])
    assert values == {"iterations": 4}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip_of_every_preset(name):
    cfg = PRESETS[name]
    data = json.loads(json.dumps(config_to_json(cfg)))
    assert data["payoffs"] == list(cfg.payoffs)
    assert config_from_json(AnalyticConfig, data) == cfg


def test_json_round_trip_of_nested_and_optional_fields():
    cfg = Outer(maybe=3, pair=(0.5, 2.0), inner=Inner(steps=4, scale=0.5))
    data = json.loads(json.dumps(config_to_json(cfg)))
    assert data["inner"] == {"steps": 4, "scale": 0.5}
    assert config_from_json(Outer, data) == cfg


def test_config_from_json_rejects_unknown_fields_and_bad_values():
    with pytest.raises(ValueError, match="no field.*bogus"):
        config_from_json(AnalyticConfig, {"bogus": 1})
    with pytest.raises(ValueError, match="invalid stored AnalyticConfig.*gamma"):
        config_from_json(AnalyticConfig, {"gamma": 2.0})
    assert config_from_json(AnalyticConfig, {}) == AnalyticConfig()
