"""`priorfx bench obs` runs end to end in libobs and reports the keys the issue names."""
from __future__ import annotations

import argparse

import pytest

from priorfx.bench import obs as bench_obs

pytestmark = [pytest.mark.host, pytest.mark.slow]


def test_bench_obs_reports_every_summary_key(obs_tools):
    p = argparse.ArgumentParser()
    bench_obs.add_arguments(p)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(["--quick", "--seconds", "1", "--no-peers"])
    res = bench_obs.run(args)
    s = res["summary"]
    for key in ("latency_frames", "callback_p99_ms", "lagged_720p30", "lagged_1080p30",
                "passthrough_720p30", "passthrough_1080p30", "corrected_fraction_720p30",
                "corrected_fraction_1080p30", "corrected_fraction_720p30_loaded", "calibration_s",
                "calibration_abs_err"):
        assert key in s, key
    run720 = res["runs"]["720p30"]
    assert run720["pushed"] == 30 and run720["frames"] > 0
    assert run720["corrected"] + run720["passthrough"] == run720["frames"]
    assert s["callback_p99_ms"] > 0 and s["lagged_720p30"] >= 0
    assert res["runs"]["720p30_calibrate"]["state"] == "done" and s["calibration_s"] > 0
