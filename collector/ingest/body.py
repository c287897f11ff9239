"""Reading request bodies within limits, gzip included (decompression-bomb safe)."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

from collector.errors import ApiError, BadRequest, PayloadTooLarge

__all__ = ["UnsupportedEncoding", "decode_body", "read_limited"]


class UnsupportedEncoding(ApiError):
    """415: a ``Content-Encoding`` other than gzip or identity."""

    status_code = 415
    code = "unsupported_encoding"


async def read_limited(
    chunks: AsyncIterator[bytes], declared_length: str | None, limit: int
) -> bytes:
    """Read at most ``limit`` bytes of a body; 413 as soon as it is known to be larger."""
    if declared_length is not None:
        try:
            if int(declared_length) > limit:
                raise PayloadTooLarge(
                    f"body of {int(declared_length)} bytes exceeds the limit of {limit} bytes"
                )
        except ValueError as exc:
            raise BadRequest("Content-Length is not a number", code="bad_content_length") from exc
    received = bytearray()
    async for chunk in chunks:
        received += chunk
        if len(received) > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
    return bytes(received)


def decode_body(body: bytes, content_encoding: str | None, max_decompressed: int) -> bytes:
    """Undo ``Content-Encoding: gzip``, never producing more than ``max_decompressed`` bytes."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding != "gzip":
        raise UnsupportedEncoding(f"Content-Encoding {encoding!r} is not supported (use gzip)")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_decompressed + 1)
        if len(out) > max_decompressed or inflater.unconsumed_tail:
            raise PayloadTooLarge(
                f"gzip body inflates beyond the limit of {max_decompressed} bytes",
                code="decompressed_too_large",
            )
        out += inflater.flush()
    except zlib.error as exc:
        raise BadRequest(f"body is not valid gzip: {exc}", code="malformed_gzip") from exc
    if not inflater.eof:
        raise BadRequest("gzip body is truncated", code="malformed_gzip")
    if inflater.unused_data:
        raise BadRequest("unexpected data after the gzip stream", code="malformed_gzip")
    if len(out) > max_decompressed:
        raise PayloadTooLarge(
            f"gzip body inflates beyond the limit of {max_decompressed} bytes",
            code="decompressed_too_large",
        )
    return out
