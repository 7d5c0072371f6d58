"""Local and development tooling: the embedded broker, the local stack of processes, the
receiver (a recording analytics endpoint), the verdict and the smoke checklists.

Sits above the services: it may import them; they never import it.
"""
