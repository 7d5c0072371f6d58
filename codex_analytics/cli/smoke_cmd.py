"""``codex-analytics smoke plugin``: upstream's plugin analytics smoke workflows
(delivery.md §7.1 and §7.2 for contract 2026-06, profile-j.md §6 "Smoke" for 2026-08)
through the whole running pipeline."""

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
    from codex_analytics.contract.facts import PluginCapabilitySummary
    from codex_analytics.contract.versions import ContractId
    from codex_analytics.devtools.localstack import LocalStack
    from codex_analytics.devtools.smoke import Check
    from producers import AnalyticsClient
    from producers.client.plugins import PluginId

DESCRIPTION = """\
Smoke workflows: drive a real workflow through the running pipeline and check what
arrives in the capture file.

'plugin' is upstream's plugin analytics smoke (plugin-analytics-smoke, and the
remote-install variant of plugin-analytics-mutation-smoke), for both contracts. It
starts the pipeline (embedded broker unless KAFKA_BOOTSTRAP_SERVERS is set, stream
worker and sink worker as processes, the sink in capture mode), creates a plugin
install root with skills, an MCP server and an app, and drives one client per contract
(--contract, default both) with the plugins manager:

  local variant   disable, enable, and use of the plugin in a turn (used twice: the
                  client's per-turn dedupe must let exactly one through)
  remote variant  a remote install returning a backend id, then the uninstall

2026-06 (delivery.md §7): exactly one codex_plugin_disabled / _enabled / _used whose plugin_id is the local id,
each naming the plugin and its marketplace, the used event with non-null has_skills,
mcp_server_count, connector_ids, mcp_server_names, thread_id, turn_id and model_slug
== "plugin-analytics-smoke"; exactly one codex_plugin_installed whose plugin_id is the
backend id, with non-null has_skills, mcp_server_count, connector_ids and
product_client_id.

2026-08 (profile-j.md §6, upstream's smoke of 2026-08; the backend's installed-plugins
snapshot names the plugin's remote id): the local checks select by the local
plugin_id and also require remote_plugin_id == the backend id; the remote checks
select by remote_plugin_id == the backend id and require exactly one
codex_plugin_installed and one codex_plugin_uninstalled, each with the local
plugin_id, the plugin's name and marketplace, and non-null has_skills,
mcp_server_count, connector_ids and product_client_id. A duplicate fails.

A plugin event's contract shows in its shape (only 2026-08 events carry
remote_plugin_id), so each contract's checks read its own events of one capture. Every
capture line must be JSON with an events array.

It prints each check, named with its contract, and PASS (exit 0) or FAIL with the
reason (exit 1). With --check it only validates an existing capture file of either
contract or both (by default the contracts whose plugin events it holds), for example
one a Codex build wrote with CODEX_ANALYTICS_EVENTS_CAPTURE_FILE set.
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
        "--contract",
        choices=("2026-06", "2026-08", "both"),
        default=None,
        help="which contract's workflow to run and check (default: both; with --check, "
        "the contracts whose plugin events the capture holds)",
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


def _contracts(args: argparse.Namespace, found: set[ContractId] | None = None) -> list[ContractId]:
    """The contracts to run and check: --contract, else both (with --check: those of
    the capture's plugin events, or both when it holds none)."""
    from codex_analytics.contract.versions import CONTRACTS

    if args.contract in CONTRACTS:
        return [args.contract]
    if args.contract is None and found:
        return [c for c in CONTRACTS if c in found]
    return list(CONTRACTS)


def _checks(args: argparse.Namespace, pid: PluginId, capture: Path) -> list[Check]:
    import dataclasses

    from codex_analytics.contract.versions import CONTRACT_S
    from codex_analytics.devtools.smoke import (
        capture_events,
        contracts_in,
        local_plugin_checklist,
        local_plugin_checklist_j,
        mutation_checklist_j,
        remote_install_checklist,
    )

    events, checks = capture_events(capture.read_bytes().splitlines())
    found = contracts_in(events) if args.check else None
    identity = {"plugin_name": pid.plugin_name, "marketplace_name": pid.marketplace_name}
    for contract in _contracts(args, found):
        mine: list[Check] = []
        local, remote = args.variant in ("local", "both"), args.variant in ("remote", "both")
        if contract == CONTRACT_S:
            if local:
                mine += local_plugin_checklist(events, plugin_id=pid.as_key(), **identity)
            if remote:
                mine += remote_install_checklist(
                    events, backend_id=args.remote_plugin_id, **identity
                )
        else:
            if local:
                mine += local_plugin_checklist_j(
                    events,
                    plugin_id=pid.as_key(),
                    remote_plugin_id=args.remote_plugin_id,
                    **identity,
                )
            if remote:
                mine += mutation_checklist_j(
                    events, backend_id=args.remote_plugin_id, plugin_id=pid.as_key(), **identity
                )
        checks += [dataclasses.replace(c, name=f"{contract}: {c.name}") for c in mine]
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
    import orjson

    from codex_analytics.contract.facts import AuthRoute
    from codex_analytics.devtools.localstack import PipelineCounts
    from codex_analytics.devtools.smoke import plugin_event_contract
    from codex_analytics.devtools.verify import captured_events
    from producers import AnalyticsClient, ClientSettings, ProducerIdentity
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
    summary = capability_summary_from_root(pid, root)
    if summary is None:
        return f"no capability summary could be read from {root}"
    wanted: set[tuple[str, str]] = set()
    published = 0
    for contract in _contracts(args):
        # One producer per contract, as a fleet mid-upgrade has; each client publishes
        # its facts in its own contract (source.contract).
        client = AnalyticsClient(
            ClientSettings(kafka=stack.cluster, topic=stack.topics.facts, contract=contract),
            identity=ProducerIdentity(auth=AuthRoute(kind="chatgpt", account_id="smoke-account")),
        )
        async with client:
            wanted |= {(contract, t) for t in _drive_plugin(client, args, pid, root, summary)}
            if not await client.flush(timeout=30):
                return f"the {contract} client could not publish the facts within 30 s"
            published += client.stats.published

    # Wait (<= 30 s) for every required event type, then for the pipeline to settle so
    # that a duplicate arriving late is seen by the "exactly one" checks.
    deadline = time.monotonic() + 30
    while True:
        stack.check_alive()
        seen = {
            (plugin_event_contract(e), str(e.get("event_type")))
            for e in (orjson.loads(line) for line in captured_events(capture))
        }
        if wanted <= seen:
            break
        if time.monotonic() > deadline:
            missing = sorted(f"{c} {t}" for c, t in wanted - seen)
            return f"not captured within 30 s: {', '.join(missing)}"
        await asyncio.sleep(0.25)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stream, sink = await asyncio.to_thread(stack.metrics)
        if PipelineCounts.of(stream, sink).settled(published):
            break
        await asyncio.sleep(0.25)
    return ""


def _drive_plugin(
    client: AnalyticsClient,
    args: argparse.Namespace,
    pid: PluginId,
    root: Path,
    summary: PluginCapabilitySummary,
) -> set[str]:
    """Drive the workflow's variants through ``client`` and the plugins manager, as
    upstream's app-server does for a client of that contract; the event types the
    contract's checklists then require.

    2026-06: the remote install's backend id is the install event's ``plugin_id``
    (delivery.md §7.2); the uninstall is cleanup, not checked. 2026-08: the backend's
    installed-plugins snapshot names the plugin's remote id, so every event carries it
    beside the local id; the uninstall is the remote one (profile-j.md §6), checked."""
    from codex_analytics.contract.versions import CONTRACT_S
    from codex_analytics.devtools.smoke import LOCAL_REQUIRED, MUTATION_REQUIRED, SMOKE_MODEL_SLUG
    from producers import PluginsManager, RemoteInstalledPlugin
    from producers.client.envelope import DEFAULT_ORIGINATOR

    profile_s = client.contract == CONTRACT_S
    backend_id = args.remote_plugin_id
    snapshot = [RemoteInstalledPlugin(pid.plugin_name, pid.marketplace_name, backend_id)]
    manager = PluginsManager({pid.as_key(): root}, remote_installed=None if profile_s else snapshot)
    wanted: set[str] = set()
    if args.variant in ("local", "both"):
        manager.track_disabled(client, pid)
        manager.track_enabled(client, pid)
        tracking = {
            "model_slug": SMOKE_MODEL_SLUG,
            "thread_id": str(uuid.uuid4()),
            "turn_id": str(uuid.uuid4()),
        }
        if not profile_s:  # Profile J tracking names the product (upstream's originator)
            tracking["product_client_id"] = DEFAULT_ORIGINATOR
        manager.track_used(client, tracking, summary)
        manager.track_used(client, tracking, summary)  # same turn: deduplicated
        wanted |= set(LOCAL_REQUIRED)
    if args.variant in ("remote", "both"):
        manager.track_installed(client, pid, remote_plugin_id=backend_id)
        if profile_s:
            manager.track_uninstalled(client, pid)  # cleanup; not asserted (§7.2)
            wanted.add("codex_plugin_installed")
        else:
            manager.track_remote_uninstalled(client, pid, backend_id, summary)
            wanted |= set(MUTATION_REQUIRED)
    return wanted
