"""Frame encoding checked against the golden frames and decoded by botocore's own parser."""

from __future__ import annotations

from botocore.eventstream import EventStreamBuffer

from esproxy.bedrock_emulator.event_stream import encode_error, encode_event, encode_exception

GOLDEN_DELTA = (
    "0000009700000057f30be03e0b3a6576656e742d74797065070011636f6e74656e74426c6f636b44656c"
    "74610d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d65737361"
    "67652d747970650700056576656e747b22636f6e74656e74426c6f636b496e646578223a302c2264656c"
    "7461223a7b2274657874223a2248656c6c6f227d7d67623831"
)
GOLDEN_THROTTLE = (
    "000000b0000000614f5086b30f3a657863657074696f6e2d747970650700137468726f74746c696e6745"
    "7863657074696f6e0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d"
    "3a6d6573736167652d74797065070009657863657074696f6e7b226d657373616765223a22546f6f206d"
    "616e7920746f6b656e732c20706c656173652077616974206265666f726520747279696e672061676169"
    "6e2e227df70ae57f"
)


def decode(*frames):
    buffer = EventStreamBuffer()
    for frame in frames:
        buffer.add_data(frame)
    return list(buffer)


def test_event_frame_matches_golden_bytes():
    frame = encode_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello"}})
    assert frame.hex() == GOLDEN_DELTA


def test_exception_frame_matches_golden_bytes():
    body = {"message": "Too many tokens, please wait before trying again."}
    assert encode_exception("throttlingException", body).hex() == GOLDEN_THROTTLE


def test_botocore_decodes_consecutive_frames():
    messages = decode(
        encode_event("messageStart", {"role": "assistant"}) + encode_error("Boom", "it broke")
    )
    assert messages[0].headers == {
        ":event-type": "messageStart",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert messages[0].payload == b'{"role":"assistant"}'
    assert messages[1].headers == {
        ":message-type": "error",
        ":error-code": "Boom",
        ":error-message": "it broke",
    }
