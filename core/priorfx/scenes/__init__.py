"""Scene synthesis: test pictures with a known truth, built from real sample media.

The benchmarks, the demo and the tests all need inputs whose truth is known:
rolling-shutter frames rendered row by row from real footage (`shutter`,
`shutter_moves`), close-up and far views of textured heads (`portrait`), and
people, animals, smoke and fire composited over real backgrounds, still and
moving (`matting`). They live here, above the manipulations and beside
bench/demo, so no manipulation depends on them and none of them knows what a
method estimates.
"""
