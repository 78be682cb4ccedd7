"""Human matting: alpha, clean foreground and confidence without a screen.

A learned person prior (RVM, recurrent, so steady across frames) gives a
confident guess; a band around its edge and its unsure region is re-solved
at full resolution with closed-form matting plus a pull towards the prior (and
towards the previous frame where the picture held still); the foreground
colours are then estimated so edges do not carry the old background. A user
trimap replaces the prior altogether (any subject: animals, smoke, fire);
holdout / garbage masks override it exactly; a subject point or box keeps one
person (priorfx.matting.subject).

    from priorfx.matting import MattingParams, matte_clip
    for r in matte_clip(frames, MattingParams(quality="fast")):
        r.alpha, r.fg, r.fg_premult, r.confidence
"""
from priorfx.matting.band import auto_band_px, confidence_map, refine_alpha, uncertainty_band
from priorfx.matting.core import MattingSession, cut_scores, matte_clip, matte_image
from priorfx.matting.cuts import cut_score, thumbnail
from priorfx.matting.foreground import estimate_foreground, estimate_foreground_multilevel
from priorfx.matting.noise import denoise_for_solve, estimate_noise
from priorfx.matting.outputs import channel_names, matte_pixels, write_matte
from priorfx.matting.params import MatteResult, MattingParams
from priorfx.matting.sampling import colour_posterior
from priorfx.matting.temporal import reliable_flow, temporal_blend

# The encoding the person prior and the solver want: display-encoded values
# (priorfx.colour converts scene-linear and log plates there and back).
WORKING_ENCODING = "display"

__all__ = ["WORKING_ENCODING", "MattingParams", "MatteResult", "MattingSession", "channel_names", "cut_scores",
           "matte_clip", "matte_image", "matte_pixels", "write_matte",
           # the steps, for benchmarks and tests
           "auto_band_px", "uncertainty_band", "refine_alpha", "confidence_map", "colour_posterior",
           "estimate_noise", "denoise_for_solve", "temporal_blend", "reliable_flow",
           "estimate_foreground", "estimate_foreground_multilevel", "thumbnail", "cut_score"]
