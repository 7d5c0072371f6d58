"""What streams.faust_adapter relies on in Faust, checked against the installed Faust.

Every method the adapter overrides, and every private name it reads, must exist where
it expects it, with the signature it expects; where an override depends on how Faust
calls it (or what Faust does right after), that call is checked too. A Faust upgrade
then fails here, in the unit suite, rather than as a lost fact in a kill -9 test.
"""

from __future__ import annotations

import inspect
import re
import tomllib
import weakref
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import aiokafka
import faust
import faust.streams
import pytest
from aiokafka.consumer.fetcher import Fetcher
from faust.app.base import App
from faust.stores import base as store_base
from faust.stores import memory, rocksdb
from faust.tables.recovery import Recovery
from faust.transport import by_url
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.app import AppT
from mode.services import WaitResults
from mode.threads import QueueServiceThread
from mode.utils.queues import FlowControlEvent
from mode.worker import Worker as ModeWorker

from streams.faust_adapter import app as faust_app
from streams.faust_adapter import transport
from streams.faust_adapter.version import (
    SUPPORTED_RANGE,
    UnsupportedFaustVersion,
    check_faust_version,
    require_supported_faust,
)

ROOT = Path(__file__).resolve().parents[2]


def shape(function: Any) -> str:
    """A signature without annotations: what callers and overriders depend on."""
    signature = inspect.signature(function)
    parameters = [p.replace(annotation=p.empty) for p in signature.parameters.values()]
    return str(signature.replace(parameters=parameters, return_annotation=signature.empty))


def source(function: Any) -> str:
    """Source with all whitespace collapsed (formatting is not what we check)."""
    return re.sub(r"\s+", "", inspect.getsource(function))


def annotated(cls: type) -> set[str]:
    return {name for klass in cls.__mro__ for name in vars(klass).get("__annotations__", {})}


# -- the version guard ------------------------------------------------------------------


def test_the_installed_faust_is_supported() -> None:
    require_supported_faust()


@pytest.mark.parametrize("version", ["0.15.3", "0.15.4", "0.15.10", "0.15.3.post1"])
def test_versions_in_the_range_pass(version: str) -> None:
    check_faust_version(version)


@pytest.mark.parametrize("version", ["0.15.2", "0.14.9", "0.16.0", "0.16.0rc1", "1.0.0", "0.11.3"])
def test_versions_outside_the_range_fail_with_both_in_the_message(version: str) -> None:
    with pytest.raises(UnsupportedFaustVersion) as failure:
        check_faust_version(version)
    assert f"faust-streaming {version} is installed" in str(failure.value)
    assert SUPPORTED_RANGE in str(failure.value)


def test_pyproject_requires_the_same_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (faust_requirement,) = [d for d in project["dependencies"] if d.startswith("faust-streaming")]
    assert faust_requirement.replace(" ", "") == "faust-streaming" + SUPPORTED_RANGE


# -- the transport ----------------------------------------------------------------------


def test_the_scheme_is_registered_for_our_transport() -> None:
    assert by_url(f"{transport.SCHEME}://localhost:9092") is transport.Transport
    assert transport.Transport.Consumer is transport.Consumer


#: (our class, the Faust class it extends, method, Faust's signature we override)
OVERRIDES = [
    (
        transport.Consumer,
        faust_consumer.Consumer,
        "__init__",
        "(self, transport, callback, on_partitions_revoked, on_partitions_assigned, *, "
        "commit_interval=None, commit_livelock_soft_timeout=None, loop=None, **kwargs)",
    ),
    (transport.Consumer, faust_aiokafka.Consumer, "_new_consumer_thread", "(self)"),
    (transport.Consumer, faust_consumer.Consumer, "wait_first", "(self, *coros, timeout=None)"),
    (transport.Consumer, faust_consumer.Consumer, "_wait_next_records", "(self, timeout)"),
    (transport.Consumer, faust_consumer.Consumer, "sleep", "(self, n)"),
    (transport.Consumer, faust_consumer.Consumer, "perform_seek", "(self)"),
    (
        transport.Consumer,
        faust_consumer.ThreadDelegateConsumer,
        "_seek",
        "(self, partition, offset)",
    ),
    (transport.Consumer, faust_consumer.Consumer, "wait_empty", "(self)"),
    (
        transport.ConsumerThread,
        faust_aiokafka.AIOKafkaConsumerThread,
        "_create_worker_consumer",
        "(self, transport)",
    ),
    (faust_app._QuietWorker, ModeWorker, "_on_sigterm", "(self)"),
    (faust_app._QuietWorker, ModeWorker, "_on_sigint", "(self)"),
    (faust_app._QuietWorker, faust.Worker, "on_execute", "(self)"),
    (faust_app._QuietWorker, ModeWorker, "stop", "(self)"),
]


@pytest.mark.parametrize(
    ("ours", "base", "name", "expected"), OVERRIDES, ids=[o[2] for o in OVERRIDES]
)
def test_each_override_replaces_the_faust_method_it_was_written_for(
    ours: type, base: type, name: str, expected: str
) -> None:
    assert issubclass(ours, base)
    assert name in vars(ours), "the override is a method of our class"
    assert shape(getattr(base, name)) == expected
    if name != "__init__":  # ours takes and passes on (*args, **kwargs)
        assert shape(getattr(ours, name)) == expected


def test_the_stop_signals_reach_the_worker_through_its_handlers() -> None:
    """mode installs ``_on_sigterm`` / ``_on_sigint`` as the loop's signal handlers, and
    ignores a second signal while the first stop runs (the deadline's reason to be)."""
    install = source(ModeWorker._install_signal_handlers_unix)
    assert "self._on_sigterm" in install
    assert "self._on_sigint" in install
    assert "ifnotself._signal_stop_time" in source(ModeWorker._schedule_shutdown)


def test_faust_delivers_each_record_through_wait_first_in_the_shape_we_run_inline() -> None:
    drain = source(faust_consumer.Consumer._drain_messages)
    assert "awaitself.wait_first(callback(message),self.suspend_flow.wait())" in drain
    assert drain.count("wait_first(") == 1
    assert WaitResults._fields == ("done", "results", "stopped")


def test_the_bulk_ack_keeps_faust_s_ack_bookkeeping() -> None:
    """``Consumer.ack_offsets`` does for many offsets what Faust's ``ack`` does for one,
    and Faust's commit reads the same structures."""
    ack = source(faust_consumer.Consumer.ack)
    for step in (
        "committed=self._committed_offset[tp]",
        "ifcommittedisNoneoroffset>=committed:",
        "acked_index.add(offset)",
        "acked_for_tp=self._acked[tp]",
        "acked_for_tp.append(offset)",
        "self._n_acked+=1",
    ):
        assert step in ack, step
    new_offset = source(faust_consumer.Consumer._new_offset)
    assert "acked=self._acked[tp]" in new_offset
    assert "self._acked_index[tp].difference_update(batch)" in new_offset


def test_getmany_yields_what_the_fetch_wait_returns() -> None:
    """The batch route takes its topic's records out of what ``_wait_next_records``
    returns; ``getmany`` yields only what is left, under the same checks."""
    getmany = source(faust_consumer.Consumer.getmany)
    assert "records,active_partitions=awaitself._wait_next_records(timeout)" in getmany
    assert "generation_id=self.app.consumer_generation_id" in getmany
    assert "ifnotself.flow_active:" in getmany
    assert "ortpinactive_partitions" in getmany


def test_the_read_offset_filter_reads_the_mapping_we_replace() -> None:
    assert "_read_offset" in annotated(faust_consumer.Consumer)
    drain = source(faust_consumer.Consumer._drain_messages)
    assert "get_read_offset=self._read_offset.__getitem__" in drain
    assert "ifr_offsetisNoneoroffset>=r_offset:" in drain


def test_faust_clears_the_stream_buffers_on_resume_after_its_seek() -> None:
    """What ``Consumer.perform_seek`` stops the flow for: every recovery ends with the
    seek, then the resume of the flow control (which clears the stream buffers), then
    the consumer's own flow; and a fetch that returns with the flow stopped is sought
    back to the committed offsets rather than delivered."""
    assert "self.clear()" in source(FlowControlEvent.resume)
    for ending in (Recovery.on_recovery_completed, Recovery._resume_streams):
        code = source(ending)
        seek = code.index("consumer.perform_seek()")
        assert seek < code.index("flow_control.resume()") < code.index("consumer.resume_flow()")
    getmany = source(faust_consumer.Consumer.getmany)
    assert "ifself.flow_active:" in getmany
    assert "awaitself.perform_seek()" in getmany
    assert "self.flow_active=False" in source(faust_consumer.Consumer.stop_flow)


def test_the_partition_report_reads_what_faust_and_aiokafka_keep() -> None:
    names = annotated(faust_consumer.Consumer)
    assert {"_active_partitions", "_paused_partitions", "_buffered_partitions"} <= names
    assert "self._records" in source(Fetcher.__init__)
    assert "self._subscription" in source(aiokafka.AIOKafkaConsumer.__init__)


def test_the_fetch_wait_sleeps_through_consumer_sleep() -> None:
    assert "_buffered_partitions" in annotated(faust_consumer.Consumer)
    assert "awaitself.sleep(1)" in source(faust_consumer.Consumer._wait_next_records)


def test_the_fetch_wait_is_hard_coded_and_read_on_start() -> None:
    worker_consumer = source(faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer)
    assert "fetch_max_wait_ms=1500" in worker_consumer
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in source(aiokafka.AIOKafkaConsumer.start)


def test_the_consumer_thread_is_built_as_faust_builds_it() -> None:
    assert shape(faust_aiokafka.AIOKafkaConsumerThread.__init__) == "(self, consumer, **kwargs)"
    assert "AIOKafkaConsumerThread(self,loop=self.loop,beacon=self.beacon)" in source(
        faust_aiokafka.Consumer._new_consumer_thread
    )


# -- the state store (streams.faust_adapter.store) --------------------------------------


def test_stores_take_their_partition_from_the_current_event() -> None:
    """The store adapter names a stand-in event with only ``message.partition``."""
    current: ContextVar[Any] = faust.streams._current_event
    assert isinstance(current, ContextVar)

    class Stand:
        message = None

    event = Stand()
    token = current.set(weakref.ref(event))
    try:
        assert faust.streams.current_event() is event
    finally:
        current.reset(token)
    for method in (rocksdb.Store._get, rocksdb.Store._set):
        assert "event=current_event()" in source(method)
        uses = set(re.findall(r"\bevent\.[\w.]+", inspect.getsource(method)))
        assert uses == {"event.message.partition"}, uses


def test_the_store_iterates_partitions_as_the_adapter_reads_them() -> None:
    assert "_dbs" in annotated(rocksdb.Store)
    assert shape(rocksdb.Store._visible_items) == "(self, db)"
    assert "self._key_partition" in source(memory.Store.__post_init__)
    assert "self.data" in source(memory.Store.__post_init__)


def test_stores_record_the_changelog_offset_they_reached() -> None:
    for store in (store_base.Store, rocksdb.Store):
        assert shape(store.set_persisted_offset) == "(self, tp, offset)"
    assert "tp.partition" in source(rocksdb.Store.set_persisted_offset)


# -- the consumer (streams.faust_adapter.consumer) --------------------------------------


def test_the_consumer_keeps_committed_offsets_and_gaps_by_partition() -> None:
    names = annotated(faust_aiokafka.Consumer)
    assert {"_committed_offset", "_gap", "_thread", "_unacked_messages"} <= names
    # What the rebalance and the stop wait for (Consumer.wait_empty waits for the batch
    # route first).
    assert "self._unacked_messages" in source(faust_consumer.Consumer.wait_empty)
    assert shape(faust_consumer.Consumer.seek) == "(self, partition, offset)"
    assert shape(faust_aiokafka.Consumer.earliest_offsets) == "(self, *partitions)"
    assert shape(faust_aiokafka.Consumer.assignment) == "(self)"
    assert shape(faust_aiokafka.Consumer.highwater) == "(self, tp)"


def test_committed_offsets_are_asked_on_the_consumer_thread() -> None:
    thread = faust_aiokafka.AIOKafkaConsumerThread
    assert issubclass(thread, QueueServiceThread)
    assert shape(thread._ensure_consumer) == "(self)"
    assert shape(thread.call_thread) == "(self, fun, *args, **kwargs)"
    assert shape(aiokafka.AIOKafkaConsumer.committed) == "(self, partition)"


def test_records_are_sent_as_the_app_adapter_sends_them() -> None:
    assert shape(faust_aiokafka.Producer.send) == (
        "(self, topic, key, value, partition, timestamp, headers, *, transactional_id=None)"
    )


def test_the_app_tells_the_generation_and_rebalancing() -> None:
    assert {"consumer_generation_id", "rebalancing"} <= annotated(AppT)
    assert issubclass(App, AppT)


def test_the_health_phase_reads_what_the_app_and_its_recovery_keep() -> None:
    """StreamApp.phase and recovery_remaining (the stream's /readyz)."""
    assert {"rebalancing", "rebalancing_count", "in_recovery"} <= annotated(AppT)
    assert "self.rebalancing_count+=1" in source(App.on_rebalance_start)
    assert "self.rebalancing=False" in source(App.on_rebalance_end)
    assert shape(Recovery.active_remaining_total) == "(self)"
    # Faust ends a rebalance only once the recovery it started is over.
    assert "self.app.on_rebalance_end()" in source(Recovery.on_recovery_completed)


def test_the_heartbeat_starts_on_the_loop_before_the_app() -> None:
    """_QuietWorker starts ``beside`` in ``on_execute``: mode awaits it on the worker's
    loop in its first-start hook, before the services (the app) start."""
    assert "awaitself.on_execute()" in source(ModeWorker.default_on_first_start)
