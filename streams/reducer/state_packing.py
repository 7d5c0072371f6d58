"""State format 6: a state's JSON bytes (format 5 or 4), deflated with a preset dictionary.

Why: a live instance's state is a few hundred bytes of JSON in which most of the bytes
are the same for every instance (the structure, the client and runtime names, the turn's
config values) and the rest repeats within the state (a turn id in its dedupe keys, the
thread id in its turn, the instance id inside both in many clients). Deflate finds the
repeats inside a state; the preset dictionary below gives it the common part to point
at, so that a state much smaller than deflate's usual warm-up still compresses (a format
5 state of ~600 bytes packs to ~120). Raw deflate (``zlib``, no header or checksum: the
Kafka record and the store are trusted as much as the JSON was) costs a few
microseconds per state written and about one per state read, against ~8 and ~12 for
the JSON itself.

The bytes: ``0x06`` then the raw deflate stream. The dictionary is part of the format:
changing one byte of it makes every stored format 6 state unreadable, so a different
dictionary is a new format number (``tests/unit/test_reducer_state_packing.py`` pins it).
"""

from __future__ import annotations

import zlib

PACKED_STATE_FORMAT_VERSION = 6
_HEADER = bytes([PACKED_STATE_FORMAT_VERSION])
#: Raw deflate (negative window bits), a 32 KiB window: the dictionary and any state fit.
_WINDOW_BITS = -15
#: Level 1 and a small hash table: most of the cost of packing a state this short is
#: setting up (hashing the dictionary). Measured on the scaling bench's state (592 bytes
#: of JSON, CPU time): level 1, memory level 4: 122 bytes in ~6 us; the defaults (6, 8):
#: 104 bytes in ~9-10 us.
_LEVEL = 1
_MEM_LEVEL = 4
#: The most a packed state may unpack to. Far above any state within ``StateLimits``
#: (every table at its limit is a few MB), it bounds the work and the memory a corrupt
#: or hostile record can cause.
MAX_UNPACKED_BYTES = 32 * 1024 * 1024

#: What states have in common, in their JSON form. Deflate reaches back into it like
#: into earlier bytes of the state, and shorter distances cost fewer bits: the most
#: common strings come last. Never change it (see the module docstring).
DICTIONARY = b"".join(
    (
        # Profile J (format 4): its keys and common values.
        b'{"v":4,"contract":"2026-08","j":{"requests":[],"threads":[],"turns":[],'
        b'"tool_items_started":[],"pending_reviews":[],"item_review_summaries":[],'
        b'"tool_responses":[],"code_mode_cells":[],"held_tool_events":[]},'
        b'"last_seq":,"watermark_ms":,"last_sweep_ms":,"connections":[],"requests":[],'
        b'"threads":[],"turns":[],"dedupe":[]}',
        b'"codex_cli_rs","codex_exec","codex_tui","codex-tui","codex_vscode","codex-vscode",'
        b'"codex_app","codex-app","codex_desktop","0.1.0","1.0.0",',
        b'"macos","15.5","aarch64","arm64","windows","10.0.26100","22.04","x86_64",',
        b'"completed","interrupted","failed",null,0],',
        b'"gpt-5","gpt-5.1-codex","gpt-5.2","o3","o4-mini","azure","ollama",',
        b'"full_access","workspace_write","external_sandbox","never","untrusted","on-failure",'
        b'"minimal","low","medium","high","xhigh","auto","concise","detailed","flex","priority",'
        b'"user","friendly","pragmatic",',
        b'"subagent","thread_spawn","guardian","review","compact","memory_consolidation",'
        b'"vscode","cli","exec","mcp","app_server","resumed","forked",',
        b'"plugin","github@openai-curated","notion@openai-curated","slack","gmail","drive",',
        # Profile S (format 5), one live instance: a connection, a thread, an open turn
        # with its config and token usage, a dedupe key.
        b'[5,1,1750000000000,1750000000000,[[1,["codex_vscode","codex-vscode","1.0.0",'
        b'"websocket",null],["0.99.0","linux","24.04","x86_64"],1750000000000]],[],'
        b'[["",1,"user","new",null,null,1750000000000]],[["",1750000000000,1,"",0,'
        b'[null,false,"gpt-5-codex","openai","read_only","medium",null,"default",'
        b'"on-request","user",true,"default",null,true],1750000000,[0,0,0,0,0],null,0]],'
        b'[["","app","drive",1750000000000]]]',
        b'["codex_vscode","codex-vscode","1.0.0","stdio",null],["0.99.0","linux","24.04",'
        b'"x86_64"],1750000000000]],[],[["",1,"user","new",null,null,1750000000000]],'
        b'[["",1750000000000,1,"",1,[null,false,"gpt-5-codex","openai","read_only",null,'
        b'null,"default","on-request","guardian_subagent",true,"plan",null,true],'
        b"1750000000,[",
    )
)


def pack(state_json: bytes) -> bytes:
    """Format 6 bytes of a state's JSON bytes (exact size: nothing keeps a larger buffer)."""
    packer = zlib.compressobj(
        _LEVEL, zlib.DEFLATED, _WINDOW_BITS, _MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, DICTIONARY
    )
    return _HEADER + packer.compress(state_json) + packer.flush()


def is_packed(data: object) -> bool:
    """Whether ``data`` is format 6 bytes (anything else, bytes or not, is not)."""
    return isinstance(data, bytes) and data[:1] == _HEADER


def unpack(data: bytes) -> bytes:
    """The JSON bytes inside format 6 bytes. Raises ``ValueError`` on anything else: not
    format 6, not one whole deflate stream, trailing bytes, or more than
    ``MAX_UNPACKED_BYTES``."""
    if not is_packed(data):
        raise ValueError("not a packed reducer state")
    unpacker = zlib.decompressobj(_WINDOW_BITS, DICTIONARY)
    try:
        state_json = unpacker.decompress(memoryview(data)[1:], MAX_UNPACKED_BYTES)
    except zlib.error as err:
        raise ValueError(f"corrupt packed reducer state: {err}") from None
    if unpacker.unconsumed_tail:
        raise ValueError(f"packed reducer state unpacks to over {MAX_UNPACKED_BYTES} bytes")
    if not unpacker.eof or unpacker.unused_data:
        raise ValueError("corrupt packed reducer state: not one whole deflate stream")
    return state_json
