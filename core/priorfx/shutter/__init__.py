"""Rolling-shutter correction (the image-sensor factor; Neural Global Shutter, CVPR'22).

A rolling-shutter sensor exposes row y at ``t0 + g * y / H``; fast motion then
skews and wobbles the picture. Knowing *when* each row was exposed turns the
fix into "move every row to one instant" along the measured motion (RS mode),
or, for sensors with a global reset, into row-wise exposure normalisation and
row-dependent deblurring (RSGR mode).

Entry points
------------
correct_clip(frames, params) -> ShutterResult      offline, a whole clip
ShutterSession(params).push(frame) -> frame         live, one stream
ShutterSession(params).push_buffer(buf, 'NV12', w, h) -> planes
Calibration(w, h).add(k, luma) -> .result               a camera's readout, live
FrameCorrector(params, w, h)                            one frame size's motion and warp
"""
from priorfx.shutter.calibrate import Calibration
from priorfx.shutter.clip import correct_clip, fit_readout, readout_evidence
from priorfx.shutter.corrector import FrameCorrector, check_frame
from priorfx.shutter.params import DEFAULT_READOUT, ShutterParams, ShutterResult
from priorfx.shutter.session import ShutterSession

# Optical flow and the remap work on display-encoded values, as the camera
# delivers them (priorfx.colour converts scene-linear and log plates).
WORKING_ENCODING = "display"

__all__ = ["WORKING_ENCODING", "Calibration", "FrameCorrector", "ShutterParams", "ShutterResult", "ShutterSession",
           "check_frame", "correct_clip", "DEFAULT_READOUT", "fit_readout", "readout_evidence"]
