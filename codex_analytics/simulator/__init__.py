"""The session simulator: realistic fact streams (``generate``) and the ``track_*`` driver
the benchmarks use. Sits above the services; they never import it.
"""
