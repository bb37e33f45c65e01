#!/usr/bin/env python3
"""Writes the seed corpora of ipc_fuzz and ipc_intake_fuzz (corpus/<target>/) from the layout
in common/ipc.h.

A frame is a 4-byte big-endian payload length and the payload. A request payload is kind 1,
then five length-prefixed strings (idempotency key, type, shop id, user id, JSON); an ack
payload is kind 2, then a 4-byte status, a length-prefixed id and a 4-byte recipient count.
Run it again after changing the layout: python3 tests/fuzz/make_ipc_seeds.py
"""
import pathlib
import struct

MAX_PAYLOAD = 256 * 1024
REQUEST, ACK = 1, 2


def u32(n):
    return struct.pack(">I", n)


def text(b):
    return u32(len(b)) + b


def request(key=b"", type_=b"product_added", shop=b"1", user=b"", json=b"{}"):
    return bytes([REQUEST]) + text(key) + text(type_) + text(shop) + text(user) + text(json)


def ack(status=0, id_=b"k3f9:17", recipients=3):
    return bytes([ACK]) + u32(status) + text(id_) + u32(recipients)


def frame(payload):
    return u32(len(payload)) + payload


TYPICAL = request(b"retry-1", b"product_added", b"123", b"",
                  b'{"type":"product_added","shopId":123,"productId":456}')
PRIVATE = request(b"", b"order_status", b"", b"987654321",
                  b'{"type":"order_status","orderId":1,"status":"paid","userId":987654321}')

SEEDS = {
    "request_frame": frame(TYPICAL),
    "request_payload": TYPICAL,
    "private_request_frame": frame(PRIVATE),
    "empty_request_payload": request(b"", b"", b"", b"", b""),
    "ack_frame": frame(ack()),
    "ack_payload": ack(1, b"e:2", 0),
    "ack_conflict": ack(3, b"", 0),
    "ack_unknown_status": ack(4),
    "stream_coalesced": frame(TYPICAL) + frame(ack()) + frame(b"") + frame(PRIVATE),
    "empty_frame": frame(b""),
    "truncated_request_frame": frame(TYPICAL)[:-5],
    "length_beyond_payload": bytes([REQUEST]) + u32(0xFFFFFFFF) + b"key",
    "trailing_byte_request": TYPICAL + b"\0",
    "oversized_header": u32(MAX_PAYLOAD + 1) + b"xx",
    "max_header_no_payload": u32(MAX_PAYLOAD),
    "frame_then_oversized": frame(ack()) + u32(0xFFFFFFFF),
    "binary_fields": frame(request(bytes(range(32)), b"\xff\xfe", b"\0", b"\x80", b"\x00{}")),
}

# What the daemon's intake (frames, then decoding, then the event rules) must refuse or pass.
def event_frame(type_, shop, user, json, key=b""):
    return frame(request(key, type_, shop, user, json))


INTAKE_SEEDS = {
    "valid_public": frame(TYPICAL),
    "valid_private": frame(PRIVATE),
    "valid_nested": event_frame(b"shop_updated", b"s-1", b"",
                                b'{"type":"shop_updated","shopId":"s-1","name":{"ru":["a",1]}}'),
    "empty_object": event_frame(b"product_added", b"1", b"", b"{}"),
    "array": event_frame(b"product_added", b"1", b"", b"[]"),
    "unknown_type": event_frame(b"nope", b"", b"", b'{"type":"nope"}'),
    "truncated_json": event_frame(b"product_added", b"1", b"", b'{"type":"product_added","shopId":1,"pro'),
    "type_mismatch": event_frame(b"product_deleted", b"123", b"",
                                 b'{"type":"product_added","shopId":123,"productId":456}'),
    "private_as_public": event_frame(b"order_status", b"", b"",
                                     b'{"type":"order_status","orderId":1,"status":"paid","userId":5}'),
    "duplicate_key": event_frame(b"shop_updated", b"1", b"",
                                 b'{"type":"shop_updated","shopId":1,"shopId":2}'),
    "stream_mixed": frame(TYPICAL) + event_frame(b"product_added", b"1", b"", b"{}") + frame(b"")
    + frame(PRIVATE) + frame(ack()),
    "truncated_frame": frame(PRIVATE)[:-3],
    "oversized_after_valid": frame(TYPICAL) + u32(MAX_PAYLOAD + 1),
}


def write(target, seeds):
    out = pathlib.Path(__file__).resolve().parent / "corpus" / target
    out.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (out / name).write_bytes(data)
    print(f"wrote {len(seeds)} seeds to {out}")


def main():
    write("ipc_fuzz", SEEDS)
    write("ipc_intake_fuzz", INTAKE_SEEDS)


if __name__ == "__main__":
    main()
