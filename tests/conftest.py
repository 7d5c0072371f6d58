"""Settings shared by every test."""

from __future__ import annotations

from hypothesis import settings

# Property tests check behaviour, not speed: Hypothesis' default 200 ms deadline per
# example fails them on a loaded 2-core machine (4 test workers beside brokers and
# services) without saying anything about the code. Speed is measured in bench/.
settings.register_profile("pipeline", deadline=None)
settings.load_profile("pipeline")
