"""``--set key=value`` overrides and JSON round trips of configs."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Literal

import pytest

from dilemmas.training.analytic import PRESETS, AnalyticConfig
from dilemmas.training.configs import (
    apply_overrides,
    check_floats,
    check_ints,
    check_memory,
    check_seeds,
    config_from_json,
    config_to_json,
    memory_estimate,
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


# --------------------------------------------------------------------------------------
# Validation helpers: bounds, finiteness, seeds, memory


@dataclasses.dataclass(frozen=True)
class Bounded:
    steps: int = 10
    width: int = 4
    offset: int = 0
    rate: float = 0.1
    share: float = 0.5
    seed: int = 0

    def __post_init__(self):
        check_seeds(self)
        check_ints(self, {"steps": 1, "width": (1, 64), "offset": (None, None)})
        check_floats(self, ["rate"], low=0.0, low_open=True)
        check_floats(self, ["share"], low=0.0, high=1.0, high_open=True)

    def memory_estimate_bytes(self) -> dict[str, int]:
        return {"steps * width (buffers)": 4 * self.steps * self.width, "fixed": 10}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": 0}, "steps must be an int >= 1 and <= 2**31 - 1"),
        ({"steps": 2**31}, "int32 range of compiled code), got 2147483648"),
        ({"steps": 10**20}, "steps must be an int >= 1"),
        ({"steps": True}, "steps must be an int"),
        ({"width": 65}, "width must be an int >= 1 and <= 64, got 65"),
        ({"offset": 1.0}, "offset must be an int, got 1.0"),
        ({"rate": 0.0}, "rate must be a finite number > 0, got 0.0"),
        ({"rate": math.inf}, "rate must be a finite number > 0, got inf"),
        ({"rate": "1"}, "rate must be a finite number > 0, got '1'"),
        ({"share": 1.0}, r"share must be a number in [0, 1), got 1.0"),
        ({"share": math.nan}, r"share must be a number in [0, 1), got nan"),
        ({"seed": 1.0}, "seed must be an integer, got 1.0"),
        ({"seed": False}, "seed must be an integer, got False"),
    ],
)
def test_bound_checks_name_field_range_and_value(changes, message):
    with pytest.raises(ValueError) as err:
        Bounded(**changes)
    assert message in str(err.value)


def test_bounds_accept_their_edges_and_any_integer_seed():
    for changes in (
        {"steps": 2**31 - 1, "width": 64, "offset": -(10**30)},
        {"rate": 1e300, "share": 0.0, "seed": -(2**100)},
    ):
        assert Bounded(**changes)
    cfg = config_from_json(
        Bounded, json.loads(json.dumps(config_to_json(Bounded(seed=2**70))))
    )
    assert cfg.seed == 2**70


def test_check_memory_names_the_dominant_terms():
    assert memory_estimate(Bounded()) == {"steps * width (buffers)": 160, "fixed": 10}
    assert memory_estimate(Inner()) == {}  # no estimate: always passes
    check_memory(Inner(), 0)
    check_memory(Bounded(), 170)
    with pytest.raises(ValueError) as err:
        check_memory(Bounded(steps=2**30), 2**30, "test memory")
    message = str(err.value)
    assert "Bounded needs at least 16.0 GiB" in message
    assert "the 1.0 GiB of test memory" in message
    assert "steps * width (buffers): 16.0 GiB" in message and "fixed" not in message


def test_a_bad_memory_estimate_is_reported():
    @dataclasses.dataclass(frozen=True)
    class Wrong:
        def memory_estimate_bytes(self):
            return {"x": -1}

    with pytest.raises(ValueError, match="must return a dict of non-negative int"):
        check_memory(Wrong(), 10)


def test_stored_values_of_any_type_are_value_errors():
    for data in (
        [1],
        {"steps": [1]},
        {"rate": 10**400},
        {"seed": "x"},
        {"steps": None},
    ):
        with pytest.raises(ValueError, match="Bounded"):
            config_from_json(Bounded, data)
