"""State format 6 (``streams.reducer.state_packing``): what is stored stays readable, and
bytes that are not one whole packed state are refused as corrupt."""

from __future__ import annotations

import hashlib
import zlib

import pytest

from streams.reducer import InstanceState, state_packing

#: A live Profile S instance (one connection, thread, open turn and dedupe key), as this
#: release packs it, and the format 5 bytes inside.
STORED = bytes.fromhex(
    "0603a6670b848005480c2e0d2c12494bcfe487af11d02a78f8162727e6a4ea66e41797e81a18e8176"
    "4a6e8825ca29f949f0f124000dd920c4362e2026678b412f12697824c86859339d04e50bc11af1de2"
    "b0c110c7263ad18646c63a26a63a8626404f0059c64686a8d98b786f814245097b56b4008611302b0200"
)
INSIDE = (
    b'[5,8,1750000008000,1750000001000,[[1,["codex_vscode","codex-vscode","1.0.0","stdio",'
    b'null],["0.99.0","linux","24.04","x86_64"],1750000002000]],[],[["scale-host-00/pid-1000'
    b'/boot-000000000000-th1",1,"user","new",null,null,1750000002000]],[["scale-host-00/pid-'
    b'1000/boot-000000000000-tu1",1750000007000,1,"scale-host-00/pid-1000/boot-000000000000-'
    b'th1",1,[null,false,"gpt-5-codex","openai","read_only",null,null,"default","on-request"'
    b',"guardian_subagent",true,"plan",null,true],1750000004,[123,45,140,13,4321],null,0]],'
    b'[["scale-host-00/pid-1000/boot-000000000000-tu1","app","drive",1750000008000]]]'
)


def test_the_dictionary_is_part_of_format_6() -> None:
    # Another dictionary cannot read the states already stored: that is a new format.
    assert state_packing.PACKED_STATE_FORMAT_VERSION == 6
    digest = hashlib.sha256(state_packing.DICTIONARY).hexdigest()
    assert digest == "9b89ef91d869dac7e87d6761713289881c3dfe82eff553951dff8137ddb47ece"


def test_stored_format_6_bytes_stay_readable() -> None:
    assert state_packing.unpack(STORED) == INSIDE
    state = InstanceState.from_bytes(STORED)
    assert state.to_bytes() == InstanceState.from_bytes(INSIDE).to_bytes()
    assert state.to_bytes(compact=True)[:1] == b"\x06"
    assert InstanceState.from_bytes(state.to_bytes(compact=True)).to_bytes() == state.to_bytes()
    assert len(state.to_bytes(compact=True)) < len(INSIDE) / 3


def _deflated(data: bytes) -> bytes:
    packer = zlib.compressobj(1, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    "data",
    [
        STORED[:-3],  # cut short
        STORED + b"\x00",  # trailing bytes
        b"\x06",  # nothing packed
        b"\x06\xff\xff\xff\xff",  # not deflate
        b"\x06" + _deflated(STORED),  # packed twice
        b"\x06" + _deflated(b"\x06garbage"),
        b"\x06" + _deflated(b"[5, 1, 2]"),  # a corrupt state inside
    ],
)
def test_corrupt_packed_bytes_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="reducer state"):
        InstanceState.from_bytes(data)


def test_a_packed_state_unpacks_to_a_bounded_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_packing, "MAX_UNPACKED_BYTES", len(INSIDE) - 1)
    with pytest.raises(ValueError, match="unpacks to over"):
        InstanceState.from_bytes(STORED)
    monkeypatch.setattr(state_packing, "MAX_UNPACKED_BYTES", len(INSIDE))
    assert state_packing.unpack(STORED) == INSIDE
