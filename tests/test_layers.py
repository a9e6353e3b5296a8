"""Record layers, each alone on a dict-backed base and stacked: round trips, compression, time."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from settee.store.layers import (
    NEVER,
    ZSTD_MAGIC,
    Compressed,
    Layer,
    PlainLayer,
    Record,
    Timestamped,
    build_stack,
    canonical_body,
)
from settee.store.serialize import dumps


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.25) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Verbatim:
    """A test base that stores the body bytes as given and drops metadata."""

    def pack(self, record: Record) -> bytes:
        return record.body

    def unpack(self, data: bytes) -> Record:
        return Record(data, {})

    def body_of(self, data: bytes) -> bytes:
        return data


def big_body(size: int) -> bytes:
    """A compressible JSON object of at least `size` bytes."""
    body = dumps({f"field{i}": f"value number {i}" for i in range(size // 20 + 1)})
    assert len(body) >= size
    return body


def real_stack() -> Layer:
    """`build_stack` with compression from 64 bytes, its clock replaced by a still one."""
    stack = build_stack(64, True)
    assert isinstance(stack, Timestamped)
    stack.clock = Clock()
    return stack


# Every layer on its own over the simplest base, plus the real stacks.
LAYERS: dict[str, Callable[[], Layer]] = {
    "plain": PlainLayer,
    "compressed": lambda: Compressed(PlainLayer(), threshold=64),
    "compressed-never": lambda: Compressed(PlainLayer(), threshold=NEVER),
    "timestamped": lambda: Timestamped(PlainLayer(), clock=Clock()),
    "stack": real_stack,
    "stack-plain": lambda: build_stack(None, False),
}


@pytest.fixture
def store() -> dict[str, bytes]:
    """The dict-backed base: what a SQL column would hold, by key."""
    return {}


@pytest.fixture(params=sorted(LAYERS))
def layer(request: pytest.FixtureRequest) -> Layer:
    return LAYERS[request.param]()


def expected_meta(layer: Layer, meta: dict[str, Any]) -> dict[str, Any]:
    """The metadata `layer` adds on pack: timestamps when it (or what it wraps) is Timestamped."""
    while not isinstance(layer, (PlainLayer, Verbatim)):
        if isinstance(layer, Timestamped):
            now = layer.clock()
            return {"created": now, **meta, "updated": now}
        assert isinstance(layer, Compressed)
        layer = layer.inner
    return meta


# --- the contract, on every layer -----------------------------------------------------------------

RECORDS = [
    Record(b"{}", {}),
    Record(b'{"a":1}', {}),
    Record(b'{"a":"x\\u0000y","b":[null,true]}', {"created": 1.5, "updated": 2.5}),
    Record(b'{"n":18446744073709551616,"s":"\\u2028\\"}"}', {"k": "\x00 in meta"}),
    Record(big_body(5000), {"created": 3.0}),
    Record('{"☃":"caf\u00e9 \U0001f600"}'.encode(), {"created": 0.0}),
]


@pytest.mark.parametrize("record", RECORDS, ids=range(len(RECORDS)))
def test_round_trip_on_a_dict_base(layer: Layer, store: dict[str, bytes], record: Record) -> None:
    store["doc"] = layer.pack(record)
    assert isinstance(store["doc"], bytes)
    assert layer.unpack(store["doc"]) == Record(record.body, expected_meta(layer, record.meta))
    assert layer.body_of(store["doc"]) == record.body


def test_records_are_frozen_values() -> None:
    record = Record(b"{}")
    assert record == Record(b"{}", {}) and record.meta == {}
    with pytest.raises(AttributeError):
        record.body = b"[]"  # type: ignore[misc]


json_objects = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text()
        | st.floats(allow_nan=False, allow_infinity=False),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                     max_size=4),
        max_leaves=20,
    ),
    max_size=8,
)
metas = st.dictionaries(
    st.text(max_size=8),
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    max_size=4,
)


@given(name=st.sampled_from(sorted(LAYERS)), doc=json_objects, meta=metas,
       pad=st.integers(0, 300))
@settings(max_examples=300)
def test_round_trip_property(name: str, doc: dict[str, Any], meta: dict[str, Any],
                             pad: int) -> None:
    layer = LAYERS[name]()
    store: dict[str, bytes] = {}
    body = canonical_body({**doc, "padding": "p" * pad})
    store["k"] = layer.pack(Record(body, meta))
    assert layer.unpack(store["k"]) == Record(body, expected_meta(layer, meta))
    assert layer.body_of(store["k"]) == body
    assert orjson.loads(layer.body_of(store["k"])) == orjson.loads(body)


# --- PlainLayer -----------------------------------------------------------------------------------


def test_plain_stores_the_body_itself_without_meta() -> None:
    assert PlainLayer().pack(Record(b'{"a":1}', {})) == b'{"a":1}'


def test_plain_appends_meta_after_a_nul() -> None:
    data = PlainLayer().pack(Record(b'{"a":1}', {"created": 1.5}))
    assert data == b'{"a":1}\x00{"created":1.5}'


def test_plain_nul_inside_strings_survives() -> None:
    body = canonical_body({"s": "a\x00b", "k\x00": "\x00"})
    assert b"\x00" not in body
    layer = PlainLayer()
    data = layer.pack(Record(body, {"note": "\x00"}))
    assert data.count(b"\x00") == 1
    assert orjson.loads(layer.body_of(data)) == {"s": "a\x00b", "k\x00": "\x00"}
    assert layer.unpack(data).meta == {"note": "\x00"}


# --- Compressed -----------------------------------------------------------------------------------


def sized(n: int) -> bytes:
    """A compressible JSON object of exactly `n` bytes."""
    return b'{"p":"' + b"x" * (n - 8) + b'"}'


def test_compression_threshold() -> None:
    layer = Compressed(PlainLayer(), threshold=1000)
    assert layer.pack(Record(sized(999))) == sized(999)
    packed = layer.pack(Record(sized(1000)))
    assert packed.startswith(ZSTD_MAGIC) and len(packed) < 100
    assert layer.unpack(packed) == Record(sized(1000))
    # The threshold applies to what the inner layer packs, metadata included.
    with_meta = Record(sized(990), {"created": 1.0})
    assert layer.pack(with_meta).startswith(ZSTD_MAGIC)


def test_compression_covers_meta_and_keeps_small_records_untouched() -> None:
    layer = Compressed(PlainLayer(), threshold=4096)
    small = Record(b'{"a":1}', {"created": 1.0})
    assert layer.pack(small) == PlainLayer().pack(small)
    large = Record(b"{}", {"note": "m" * 5000})
    packed = layer.pack(large)
    assert packed.startswith(ZSTD_MAGIC)
    assert layer.unpack(packed) == large and layer.body_of(packed) == b"{}"


def test_data_that_looks_like_a_frame_is_always_compressed() -> None:
    layer = Compressed(Verbatim(), threshold=NEVER)
    tricky = ZSTD_MAGIC + b"not really zstd"
    packed = layer.pack(Record(tricky))
    assert packed != tricky and packed.startswith(ZSTD_MAGIC)
    assert layer.unpack(packed) == Record(tricky) and layer.body_of(packed) == tricky


def test_compressed_records_stay_readable_with_compression_off() -> None:
    record = Record(big_body(10_000), {"created": 1.0, "updated": 2.0})
    packed = build_stack(4096, True).pack(record)
    assert packed.startswith(ZSTD_MAGIC)
    off = build_stack(None, False)
    assert off.body_of(packed) == record.body
    assert off.unpack(packed).body == record.body
    assert not off.pack(record).startswith(ZSTD_MAGIC)


@pytest.mark.parametrize("level", [1, 3, 19])
def test_compression_level(level: int) -> None:
    layer = Compressed(PlainLayer(), threshold=0, level=level)
    record = Record(big_body(20_000))
    assert layer.unpack(layer.pack(record)) == record


def test_compression_from_many_threads() -> None:
    layer = Compressed(PlainLayer(), threshold=100)
    records = [Record(big_body(2000 + i * 37), {"i": i}) for i in range(16)]
    failures: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for n in range(200):
                record = records[(n + offset) % len(records)]
                assert layer.unpack(layer.pack(record)) == record
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


# --- Timestamped ----------------------------------------------------------------------------------


def test_timestamps_are_set_in_meta_not_body(store: dict[str, bytes]) -> None:
    clock = Clock(100.0)
    layer = Timestamped(PlainLayer(), clock=clock)
    store["a"] = layer.pack(Record(b'{"a":1}'))
    assert layer.unpack(store["a"]) == Record(b'{"a":1}', {"created": 100.0, "updated": 100.0})
    assert layer.body_of(store["a"]) == b'{"a":1}'


def test_created_is_kept_and_updated_moves(store: dict[str, bytes]) -> None:
    clock = Clock(100.0)
    layer = Timestamped(PlainLayer(), clock=clock)
    store["a"] = layer.pack(Record(b'{"v":1}', {"other": "x"}))
    clock.now = 250.5
    previous = layer.unpack(store["a"])
    store["a"] = layer.pack(Record(b'{"v":2}', previous.meta))
    assert layer.unpack(store["a"]).meta == {"other": "x", "created": 100.0, "updated": 250.5}


def test_timestamped_leaves_the_given_record_alone() -> None:
    meta = {"created": 5.0}
    Timestamped(PlainLayer(), clock=Clock(9.0)).pack(Record(b"{}", meta))
    assert meta == {"created": 5.0}


def test_timestamped_unpack_passes_through() -> None:
    data = PlainLayer().pack(Record(b"{}", {"x": 1}))
    assert Timestamped(PlainLayer(), clock=Clock()).unpack(data) == Record(b"{}", {"x": 1})


# --- the stack ------------------------------------------------------------------------------------


def layers_of(layer: Layer) -> Iterator[Layer]:
    while True:
        yield layer
        inner = getattr(layer, "inner", None)
        if inner is None:
            return
        layer = inner


@pytest.mark.parametrize(("threshold", "timestamps", "shape", "effective"), [
    (4096, True, [Timestamped, Compressed, PlainLayer], 4096),
    (100, False, [Compressed, PlainLayer], 100),
    (None, True, [Timestamped, Compressed, PlainLayer], NEVER),
    (None, False, [Compressed, PlainLayer], NEVER),
])
def test_build_stack_shape(threshold: int | None, timestamps: bool, shape: list[type],
                           effective: int) -> None:
    stack = list(layers_of(build_stack(threshold, timestamps)))
    assert [type(layer) for layer in stack] == shape
    assert next(lay for lay in stack if isinstance(lay, Compressed)).threshold == effective


def test_full_stack_round_trip(store: dict[str, bytes]) -> None:
    stack = build_stack(4096, True)
    doc = {"_id": "a", "_rev": "1-x", "big": "z" * 8000, "n": 2**70}
    store["a"] = stack.pack(Record(canonical_body(doc)))
    assert store["a"].startswith(ZSTD_MAGIC)
    record = stack.unpack(store["a"])
    assert set(record.meta) == {"created", "updated"}
    assert record.body == stack.body_of(store["a"]) == canonical_body(doc)


# --- canonical_body -------------------------------------------------------------------------------


def test_canonical_body_drops_underscore_keys_and_keeps_order() -> None:
    doc = {"_id": "x", "z": 1, "_rev": "1-a", "a": {"_nested": True}, "_attachments": {},
           "_deleted": False, "_revisions": {}, "m": [1.0, 2]}
    assert canonical_body(doc) == b'{"z":1,"a":{"_nested":true},"m":[1.0,2]}'


def test_canonical_body_without_underscore_keys_is_dumps() -> None:
    doc = {"b": 1, "a": [None, "é"]}
    assert canonical_body(doc) == dumps(doc) == '{"b":1,"a":[null,"é"]}'.encode()


def test_canonical_body_keeps_big_ints_and_nul_escapes() -> None:
    doc = {"_id": "x", "n": 2**64, "m": -(10**5000) - 3, "s": "\x00"}
    body = canonical_body(doc)
    assert body.startswith(b'{"n":18446744073709551616,"m":-1000')
    assert body.endswith(b'0003,"s":"\\u0000"}')
    assert len(body) == len('{"n":18446744073709551616,"m":-,"s":"\\u0000"}') + 5001


def test_canonical_body_of_an_empty_doc() -> None:
    assert canonical_body({"_id": "x", "_rev": "1-a"}) == b"{}"
