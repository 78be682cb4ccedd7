"""Learned and classical priors, each behind a small function returning arrays.

- face: BlazeFace detection + 468-point face mesh (LiteRT)
- segmentation: selfie person segmentation (LiteRT)
- person: RVM recurrent person matting (onnxruntime)
- motion: dense optical flow (OpenCV DIS)
"""
