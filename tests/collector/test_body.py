"""Body decoding limits (pure functions)."""

from __future__ import annotations

import gzip

import pytest

from collector.errors import BadRequest, PayloadTooLarge
from collector.ingest.body import UnsupportedEncoding, decode_body


def test_identity_and_gzip_roundtrip() -> None:
    assert decode_body(b"{}", None, 10) == b"{}"
    assert decode_body(gzip.compress(b'{"a": 1}'), "gzip", 100) == b'{"a": 1}'
    assert decode_body(gzip.compress(b"x" * 100), "GZIP", 100) == b"x" * 100


def test_limits_and_malformed() -> None:
    with pytest.raises(PayloadTooLarge):
        decode_body(gzip.compress(b"x" * 101), "gzip", 100)
    with pytest.raises(BadRequest, match="truncated"):
        decode_body(gzip.compress(b"x" * 1000)[:-12], "gzip", 10_000)
    with pytest.raises(BadRequest, match="after the gzip stream"):
        decode_body(gzip.compress(b"a") + gzip.compress(b"b"), "gzip", 100)
    with pytest.raises(UnsupportedEncoding):
        decode_body(b"", "deflate", 100)
