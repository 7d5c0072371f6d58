"""Everything the stream worker needs from Faust, behind classes of ours.

Faust's private names and the methods we override change between minor releases, so
they live here and nowhere else: no other module of :mod:`streams` imports ``faust`` or
``mode`` (an import-linter contract in pyproject.toml). Importing this package checks
the installed faust-streaming against the range the adapter is written for
(:mod:`.version`), and ``tests/unit/test_stream_faust_hooks.py`` checks every hook and
private name it relies on, so an upgrade fails at import or in the unit suite, not in
a kill -9 test.

* :mod:`.transport`: Faust's aiokafka transport with our consumer (the overrides).
* :mod:`.app`: the Faust app of the worker (facts topic, state table, agent, run).
* :mod:`.store`: the state table's local store (get, put, delete, iterate).
* :mod:`.consumer`: offsets, seeks and assignment of the app's consumer.
"""

from .version import require_supported_faust

require_supported_faust()
