"""Finding where a chunked body ends, without copying or changing its bytes."""

from __future__ import annotations

from esproxy.splice.heads import InvalidResponse

_HEX = b"0123456789abcdefABCDEF"
MAX_LINE = 8192  # a chunk-size or trailer line longer than this is not HTTP anyone sends


class ChunkedScanner:
    """Fed a chunked body piece by piece; says where it ends (after its trailers)."""

    __slots__ = ("line", "skip", "trailers")

    def __init__(self) -> None:
        self.skip = 0  # chunk data and its CRLF still to pass over
        self.line = b""  # a size or trailer line split across pieces
        self.trailers = False

    def feed(self, data: bytes) -> int:
        """The offset in `data` just past the body's end, or -1 when the body goes on."""
        at, size = 0, len(data)
        while True:
            if self.skip:
                step = min(self.skip, size - at)
                at += step
                self.skip -= step
                if self.skip:
                    return -1
            newline = data.find(b"\n", at)
            if newline < 0:
                self.line += data[at:]
                if len(self.line) > MAX_LINE:
                    raise InvalidResponse("chunk line too long")
                return -1
            line, self.line = self.line + data[at:newline], b""
            at = newline + 1
            if line[-1:] != b"\r":
                raise InvalidResponse("chunk line without CRLF")
            line = line[:-1]
            if self.trailers:
                if not line:
                    return at
                continue
            digits = line.partition(b";")[0].strip(b" \t")
            if not digits or len(digits) > 15 or digits.translate(None, _HEX):
                raise InvalidResponse(f"bad chunk size [{digits[:20]!r}]")
            length = int(digits, 16)
            if length == 0:
                self.trailers = True
            else:
                self.skip = length + 2
