"""ShutterParams: validation, JSON round trip."""
from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from priorfx.errors import UsageError
from priorfx.shutter import ShutterParams


@pytest.mark.parametrize("g", [0, 0.0, -0.2, 1.01, 1.5, float("nan"), float("inf"), "fast"])
def test_readout_outside_0_1_is_a_usage_error(g):
    with pytest.raises(UsageError) as err:
        ShutterParams(readout=g)
    assert "readout" in err.value.message
    assert "(0, 1]" in err.value.message or "not a number" in err.value.message
    assert err.value.hint


@pytest.mark.parametrize("g", [1e-3, 0.3, 1.0, 1, "0.5"])
def test_readout_inside_0_1_is_kept_as_float(g):
    assert ShutterParams(readout=g).readout == pytest.approx(float(g))


@pytest.mark.parametrize("auto", [None, "auto", "AUTO"])
def test_readout_auto(auto):
    assert ShutterParams(readout=auto).readout is None


@pytest.mark.parametrize("field,value", [("mode", "gs"), ("scan", "left"), ("target", "bottom"),
                                         ("strength", 1.5), ("strength", -0.1), ("exposure", 0),
                                         ("smoothing", 2), ("lookahead", "yes"), ("flow_width", 10),
                                         ("flow_width", 320.5), ("flow_preset", "slow")])
def test_bad_fields_are_usage_errors_naming_the_field(field, value):
    with pytest.raises(UsageError) as err:
        ShutterParams(**{field: value})
    assert field in err.value.message


def test_json_round_trip_gives_equal_params():
    p = ShutterParams(readout=0.7, mode="RSGR", scan="up", lookahead=True, strength=0.5, target="top",
                      exposure=0.3, smoothing=0.1, flow_width=480, flow_preset="medium")
    assert p.mode == "rsgr"
    d = json.loads(json.dumps(asdict(p)))
    assert ShutterParams(**d) == p
