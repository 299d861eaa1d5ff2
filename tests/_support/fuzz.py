"""What the API fuzz tests share: the hypothesis profiles, a server loop in a thread, JSON
mutation strategies seeded from real clients' requests, and raw gRPC calls.

Profiles (``WONDERLAND_FUZZ_PROFILE``): ``short`` (the default, a few seconds per API in the
normal suite) and ``long`` (``bench/fuzz/run.py``; ``WONDERLAND_FUZZ_EXAMPLES`` examples per
test, a fresh seed per round). A server under fuzz runs in its own event loop in a thread, so
the hypothesis tests stay synchronous and one server serves every example; at the end each
test checks that the server still answers and holds no more tasks (connections, streams)
than before the run.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = [
    "FUZZ",
    "GRPC_BAD_CODES",
    "NOT_A_MESSAGE",
    "LoopThread",
    "grpc_call",
    "json_values",
    "loop_thread",
    "mutate_message",
    "mutated",
    "parses",
    "raw_http",
]

T = TypeVar("T")

settings.register_profile(
    "short",
    max_examples=int(os.environ.get("WONDERLAND_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,  # the normal suite runs the same examples every time
    database=None,
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("WONDERLAND_FUZZ_EXAMPLES", "2000")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
#: The settings every fuzz test is decorated with (``@FUZZ``); applied per test rather than
#: loaded globally, so other hypothesis tests in the same process keep their own.
FUZZ = settings.get_profile(os.environ.get("WONDERLAND_FUZZ_PROFILE", "short"))

#: gRPC codes that mean "the server broke", never an answer to a malformed request.
GRPC_BAD_CODES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE}
#: The one INTERNAL a malformed request gets: bytes that are not the method's request message
#: (grpcio's answer, word for word; grpc-go says INTERNAL "error unmarshalling request" too).
NOT_A_MESSAGE = (grpc.StatusCode.INTERNAL, "Exception deserializing request!")


def parses(full_name: str, payload: bytes) -> bool:
    """Whether ``payload`` decodes as the protobuf message type ``full_name``."""
    from google.protobuf import message, message_factory, symbol_database

    descriptor = symbol_database.Default().pool.FindMessageTypeByName(full_name)
    try:
        message_factory.GetMessageClass(descriptor).FromString(payload)
    except message.DecodeError:
        return False
    return True


class LoopThread:
    """An event loop in a daemon thread; ``run`` executes a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        async def wrapped() -> T:
            return await fn()

        return self.run(wrapped(), timeout)

    def tasks(self) -> list[str]:
        """The tasks alive in the loop (connections, streams, batchers), by name."""

        async def names() -> list[str]:
            await asyncio.sleep(0)
            me = asyncio.current_task()
            return sorted(repr(t.get_coro()) for t in asyncio.all_tasks() if t is not me)

        return self.run(names())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@contextmanager
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON document, including the awkward leaves (huge ints, NaN-free floats, ``\\x00``)."""
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
    )
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=10), children, max_size=5)
        ),
        max_leaves=max_leaves,
    )


def _mutate_once(draw: st.DrawFn, doc: Any) -> Any:
    """One change somewhere in ``doc``: replace a value, drop or add a key, wrap or empty."""
    if isinstance(doc, dict) and doc and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(doc)))
        action = draw(st.sampled_from(["replace", "drop", "recurse", "recurse"]))
        out = dict(doc)
        if action == "drop":
            del out[key]
        elif action == "replace":
            out[key] = draw(json_values())
        else:
            out[key] = _mutate_once(draw, doc[key])
        return out
    if isinstance(doc, list) and doc and draw(st.booleans()):
        i = draw(st.integers(0, len(doc) - 1))
        out_list = list(doc)
        action = draw(st.sampled_from(["replace", "drop", "dup", "recurse", "recurse"]))
        if action == "drop":
            del out_list[i]
        elif action == "dup":
            out_list.insert(i, doc[i])
        elif action == "replace":
            out_list[i] = draw(json_values())
        else:
            out_list[i] = _mutate_once(draw, doc[i])
        return out_list
    if isinstance(doc, dict) and draw(st.booleans()):
        return {**doc, draw(st.text(max_size=8)): draw(json_values())}
    return draw(json_values())


@st.composite
def mutated(draw: st.DrawFn, seeds: list[Any], max_changes: int = 3) -> Any:
    """A seed document (a real client's request) with up to ``max_changes`` changes."""
    doc = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(0, max_changes))):
        doc = _mutate_once(draw, doc)
    return doc


def grpc_call(
    channel: grpc.Channel, path: str, payload: bytes, metadata: tuple[tuple[str, str], ...] = ()
) -> tuple[grpc.StatusCode, str, bytes]:
    """One unary call with ``payload`` as the serialized request: (code, details, reply)."""
    call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    try:
        reply, state = call.with_call(payload, timeout=20, metadata=metadata)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or "", b""
    return state.code(), "", reply


def raw_http(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send ``request`` bytes on a fresh connection; all bytes until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            out += chunk


def _random_scalar(data: st.DataObject, field: Any) -> Any:
    from google.protobuf.descriptor import FieldDescriptor as F

    t = field.type
    if t == F.TYPE_STRING:
        return data.draw(st.text(max_size=12))
    if t == F.TYPE_BYTES:
        return data.draw(st.binary(max_size=24))
    if t == F.TYPE_BOOL:
        return data.draw(st.booleans())
    if t in (F.TYPE_FLOAT, F.TYPE_DOUBLE):
        return data.draw(st.floats(width=32 if t == F.TYPE_FLOAT else 64))
    if t == F.TYPE_ENUM:
        return data.draw(st.sampled_from([v.number for v in field.enum_type.values]))
    unsigned = t in (F.TYPE_UINT32, F.TYPE_UINT64, F.TYPE_FIXED32, F.TYPE_FIXED64)
    bits = (
        32
        if t in (F.TYPE_INT32, F.TYPE_UINT32, F.TYPE_SINT32, F.TYPE_FIXED32, F.TYPE_SFIXED32)
        else 64
    )
    lo = 0 if unsigned else -(2 ** (bits - 1))
    hi = 2**bits - 1 if unsigned else 2 ** (bits - 1) - 1
    return data.draw(st.integers(lo, hi))


def _repeated(field: Any) -> bool:
    from google.protobuf.descriptor import FieldDescriptor as F

    is_repeated = getattr(field, "is_repeated", None)
    if isinstance(is_repeated, bool):
        return is_repeated
    return bool(field.label == F.LABEL_REPEATED)


def mutate_message(data: st.DataObject, msg: Any, depth: int = 0) -> None:
    """Change one field of protobuf ``msg`` (recursing into messages): a random value, an
    extra repeated or map entry, or the field cleared."""
    from google.protobuf.descriptor import FieldDescriptor as F

    fields = list(msg.DESCRIPTOR.fields)
    if not fields:
        return
    field = data.draw(st.sampled_from(fields))
    if data.draw(st.integers(0, 5)) == 0:
        msg.ClearField(field.name)
        return
    target = getattr(msg, field.name)
    is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
    if is_map:
        key_field, value_field = field.message_type.fields
        key = _random_scalar(data, key_field)
        if value_field.type == F.TYPE_MESSAGE:
            if depth < 3:
                mutate_message(data, target[key], depth + 1)
        else:
            target[key] = _random_scalar(data, value_field)
    elif _repeated(field):
        if field.type == F.TYPE_MESSAGE:
            item = (
                target[data.draw(st.integers(0, len(target) - 1))]
                if target and data.draw(st.booleans())
                else target.add()
            )
            if depth < 3:
                mutate_message(data, item, depth + 1)
        else:
            target.append(_random_scalar(data, field))
    elif field.type == F.TYPE_MESSAGE:
        if depth < 3:
            mutate_message(data, target, depth + 1)
    else:
        setattr(msg, field.name, _random_scalar(data, field))
