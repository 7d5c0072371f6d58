"""``codex-analytics smoke plugin``: upstream's plugin analytics smoke workflows
(delivery.md §7.1 and §7.2) through the whole running pipeline."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from codex_analytics.cli.service import add_only_action

if TYPE_CHECKING:
    from codex_analytics.devtools.localstack import LocalStack
    from codex_analytics.devtools.smoke import Check
    from producers.client.plugins import PluginId

DESCRIPTION = """\
Smoke workflows: drive a real workflow through the running pipeline and check what
arrives in the capture file.

'plugin' is upstream's plugin analytics smoke (plugin-analytics-smoke, and the
remote-install variant of plugin-analytics-mutation-smoke). It starts the pipeline
(embedded broker unless KAFKA_BOOTSTRAP_SERVERS is set, stream worker and sink worker
as processes, the sink in capture mode), creates a plugin install root with skills,
an MCP server and an app, and drives through the client library and the plugins
manager:

  local variant   disable, enable, and use of the plugin in a turn (used twice: the
                  client's per-turn dedupe must let exactly one through)
  remote variant  a remote install returning a backend id, then the uninstall

Then it checks the capture against upstream's checklists: exactly one
codex_plugin_disabled / _enabled / _used whose plugin_id is the local id, each naming
the plugin and its marketplace, the used event with non-null has_skills,
mcp_server_count, connector_ids, mcp_server_names, thread_id, turn_id and model_slug
== "plugin-analytics-smoke"; exactly one codex_plugin_installed whose plugin_id is the
backend id, with non-null has_skills, mcp_server_count, connector_ids and
product_client_id; every capture line JSON with an events array.

It prints each check and PASS (exit 0) or FAIL with the reason (exit 1). With --check
it only validates an existing capture file, for example one a Codex build wrote with
CODEX_ANALYTICS_EVENTS_CAPTURE_FILE set.
"""

DEFAULT_PLUGIN_ID = "smoke-sample@codex-analytics-smoke"
DEFAULT_REMOTE_ID = "plugins~Plugin_smoke_sample"


def register(parser: argparse.ArgumentParser) -> None:
    plugin = add_only_action(
        parser,
        ("workflow", "WORKFLOW"),
        "plugin",
        help="the plugin analytics smoke (delivery.md §7.1, §7.2)",
        description=DESCRIPTION,
    )
    plugin.add_argument(
        "--plugin-id",
        default=DEFAULT_PLUGIN_ID,
        metavar="NAME@MARKETPLACE",
        help=f"local plugin id (default: {DEFAULT_PLUGIN_ID})",
    )
    plugin.add_argument(
        "--remote-plugin-id",
        default=DEFAULT_REMOTE_ID,
        metavar="ID",
        help=f"backend id of the remote-install variant (default: {DEFAULT_REMOTE_ID})",
    )
    plugin.add_argument(
        "--variant",
        choices=("local", "remote", "both"),
        default="both",
        help="which workflow to run and check (default: both)",
    )
    plugin.add_argument(
        "--capture",
        metavar="PATH",
        help="capture file (default: <tmp>/codex-plugin-analytics-<pid>.jsonl); its "
        "directory must exist; a stale file is removed",
    )
    plugin.add_argument(
        "--check",
        action="store_true",
        help="only validate the existing capture file at --capture (no pipeline)",
    )
    plugin.add_argument(
        "--keep", action="store_true", help="keep the work directory (logs, plugin root)"
    )


def run(args: argparse.Namespace) -> int:
    from codex_analytics.devtools.smoke import Check
    from producers.client.plugins import PluginId, PluginIdError

    try:
        pid = PluginId.parse(args.plugin_id)
    except PluginIdError as exc:
        print(f"smoke plugin: --plugin-id: {exc}", file=sys.stderr)
        return 2
    if args.check and not args.capture:
        print("smoke plugin: --check needs --capture PATH", file=sys.stderr)
        return 2
    capture = Path(
        args.capture or Path(tempfile.gettempdir()) / f"codex-plugin-analytics-{os.getpid()}.jsonl"
    )
    if not args.check:
        if not capture.parent.is_dir():
            print(f"smoke plugin: {capture.parent} does not exist", file=sys.stderr)
            return 2
        capture.unlink(missing_ok=True)
        try:
            error = _drive(args, pid, capture)
        except KeyboardInterrupt:
            print("\nsmoke plugin: interrupted; every service was stopped", file=sys.stderr)
            return 130
        if error:
            return _verdict([Check("workflow ran through the pipeline", False, error)], capture)
    elif not capture.is_file():
        print(f"smoke plugin: {capture} does not exist", file=sys.stderr)
        return 2
    return _verdict(_checks(args, pid, capture), capture)


def _checks(args: argparse.Namespace, pid: PluginId, capture: Path) -> list[Check]:
    from codex_analytics.devtools.smoke import (
        capture_events,
        local_plugin_checklist,
        remote_install_checklist,
    )

    events, checks = capture_events(capture.read_bytes().splitlines())
    if args.variant in ("local", "both"):
        checks += local_plugin_checklist(
            events,
            plugin_id=pid.as_key(),
            plugin_name=pid.plugin_name,
            marketplace_name=pid.marketplace_name,
        )
    if args.variant in ("remote", "both"):
        checks += remote_install_checklist(
            events,
            backend_id=args.remote_plugin_id,
            plugin_name=pid.plugin_name,
            marketplace_name=pid.marketplace_name,
        )
    return checks


def _verdict(checks: list[Check], capture: Path) -> int:
    from codex_analytics.devtools.smoke import first_failure

    print(f"capture file: {capture}")
    for check in checks:
        print(check.line())
    failed = first_failure(checks)
    if failed is None:
        print(f"PASS: {len(checks)} checks")
        return 0
    print(f"FAIL: {failed.name}" + (f": {failed.detail}" if failed.detail else ""))
    return 1


def _drive(args: argparse.Namespace, pid: PluginId, capture: Path) -> str:
    """Run the workflow through the pipeline; an error message, or "" when it ran."""
    from codex_analytics.devtools.broker import kafka_cluster
    from codex_analytics.devtools.localstack import (
        LocalStack,
        StackError,
        create_topics,
        interrupts_raise,
        private_topics,
    )
    from codex_analytics.runtime.kafka import KafkaCluster
    from codex_analytics.runtime.kafka_start import KafkaStartError

    configured = KafkaCluster.configured()  # a bad setting: one line, exit 2 (cli.main)
    work = Path(tempfile.mkdtemp(prefix="codex-plugin-analytics-"))
    run_id = f"smoke-{uuid.uuid4().hex[:8]}"
    topics = private_topics(run_id, partitions=1)  # one instance: one partition is enough
    error = ""
    try:
        (work / "logs").mkdir()
        with (
            interrupts_raise(),
            kafka_cluster(configured, log_path=str(work / "logs" / "broker.log")) as cluster,
        ):
            try:
                asyncio.run(create_topics(cluster, topics))
            except KafkaStartError as exc:
                return str(exc)
            stack = LocalStack(cluster, work, topics, run_id=run_id, capture_path=capture)
            stack.start()
            try:
                stack.wait_ready(60)
                error = asyncio.run(_workflow(stack, args, pid, work))
            except StackError as exc:
                error = str(exc)
            finally:
                exits = stack.stop()
            bad = {name: code for name, code in exits.items() if code not in (0, None)}
            if bad and not error:
                error = "services exited uncleanly: " + ", ".join(
                    f"{n} {c}" for n, c in bad.items()
                )
    finally:
        if error or args.keep:
            print(f"smoke plugin: work directory (logs, plugin root): {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return error


def _plugin_root(work: Path, plugin_name: str) -> Path:
    """An installed plugin as upstream lays it out: a manifest, a skill, an MCP server
    and an app, so that every capability field of the events is non-null."""
    import orjson

    root = work / "plugins" / plugin_name
    (root / ".codex-plugin").mkdir(parents=True)
    (root / "skills" / "smoke-skill").mkdir(parents=True)
    (root / "skills" / "smoke-skill" / "SKILL.md").write_text("---\nname: smoke-skill\n---\n")
    manifest = {
        "name": plugin_name,
        "version": "0.0.1",
        "skills": "./skills/",
        "mcpServers": {"smoke-mcp": {"command": "smoke-mcp-server"}},
        "apps": "./.app.json",
    }
    (root / ".codex-plugin" / "plugin.json").write_bytes(orjson.dumps(manifest))
    (root / ".app.json").write_bytes(orjson.dumps({"apps": {"calendar": {"id": "calendar"}}}))
    return root


async def _workflow(stack: LocalStack, args: argparse.Namespace, pid: PluginId, work: Path) -> str:
    from codex_analytics.contract.facts import AuthRoute
    from codex_analytics.devtools.localstack import PipelineCounts
    from codex_analytics.devtools.smoke import LOCAL_REQUIRED, SMOKE_MODEL_SLUG
    from codex_analytics.devtools.verify import captured_events, event_type
    from producers import AnalyticsClient, ClientSettings, PluginsManager, ProducerIdentity
    from producers.client.plugins import capability_summary_from_root

    assert stack.capture_path is not None
    capture = stack.capture_path
    # Step 1 of upstream's smoke: the capture file exists once the sink runs.
    deadline = time.monotonic() + 5
    while not capture.exists():
        if time.monotonic() > deadline:
            return f"the sink did not create the capture file {capture} within 5 s"
        await asyncio.sleep(0.05)

    root = _plugin_root(work, pid.plugin_name)
    manager = PluginsManager({pid.as_key(): root})
    client = AnalyticsClient(
        ClientSettings(kafka=stack.cluster, topic=stack.topics.facts, contract="2026-06"),
        identity=ProducerIdentity(auth=AuthRoute(kind="chatgpt", account_id="smoke-account")),
    )
    wanted: set[str] = set()
    async with client:
        if args.variant in ("local", "both"):
            manager.track_disabled(client, pid)
            manager.track_enabled(client, pid)
            summary = capability_summary_from_root(pid, root)
            if summary is None:
                return f"no capability summary could be read from {root}"
            tracking = {
                "model_slug": SMOKE_MODEL_SLUG,
                "thread_id": str(uuid.uuid4()),
                "turn_id": str(uuid.uuid4()),
            }
            manager.track_used(client, tracking, summary)
            manager.track_used(client, tracking, summary)  # same turn: deduplicated
            wanted |= set(LOCAL_REQUIRED)
        if args.variant in ("remote", "both"):
            manager.track_installed(client, pid, remote_plugin_id=args.remote_plugin_id)
            manager.track_uninstalled(client, pid)  # cleanup; not asserted (§7.2)
            wanted.add("codex_plugin_installed")
        if not await client.flush(timeout=30):
            return "the client could not publish the facts within 30 s"
        published = client.stats.published

    # Wait (<= 30 s) for every required event type, then for the pipeline to settle so
    # that a duplicate arriving late is seen by the "exactly one" checks.
    deadline = time.monotonic() + 30
    while True:
        stack.check_alive()
        seen = {event_type(e) for e in captured_events(capture)}
        if wanted <= seen:
            break
        if time.monotonic() > deadline:
            return f"not captured within 30 s: {', '.join(sorted(wanted - seen))}"
        await asyncio.sleep(0.25)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stream, sink = await asyncio.to_thread(stack.metrics)
        if PipelineCounts.of(stream, sink).settled(published):
            break
        await asyncio.sleep(0.25)
    return ""
