"""The session simulator: realistic fact streams (``generate``) and the ``track_*`` driver
the benchmarks use. Sits above the services; they never import it.
"""

#: The commands' share of instances speaking contract ``2026-08`` (``generate``, ``demo``):
#: a mix of both contracts by default. Here, so that a command's options cost no import.
DEFAULT_J_SHARE = 0.25
