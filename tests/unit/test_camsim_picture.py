"""Camsim's picture faults (image health tests): the control request and the spec (pure)."""

from __future__ import annotations

import pytest

from vigil_camsim import control_api as api
from vigil_camsim.core import CameraSpec, SpecError, cache_key


def test_the_picture_request_is_parsed_and_bad_input_refused() -> None:
    ok = api.parse_request("POST", "/cameras/1/picture", b'{"fault": "frozen"}')
    assert ok == api.SetPicture("1", "frozen")
    for body, why in (
        (b'{"fault": "purple"}', "must be one of"),
        (b'{"fault": "black", "x": 1}', "unknown field"),
        (b"", "JSON body required"),
    ):
        bad = api.parse_request("POST", "/cameras/1/picture", body)
        assert isinstance(bad, api.ApiError) and why in bad.message


def test_a_picture_fault_is_its_own_loop_and_none_restores_the_normal_one() -> None:
    spec = CameraSpec("1", "CAM 1")
    frozen = spec.with_picture("frozen")
    assert frozen.picture == "frozen" and cache_key(frozen) != cache_key(spec)
    assert cache_key(frozen.with_picture("none")) == cache_key(spec)
    with pytest.raises(SpecError):
        spec.with_picture("purple")
