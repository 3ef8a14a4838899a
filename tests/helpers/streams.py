"""File-like objects for building large archives without the memory: ``Zeros(n)`` reads as n zero bytes."""

from __future__ import annotations

import io


class Zeros(io.RawIOBase):
    """``size`` zero bytes, read in whatever pieces the reader asks for (tarfile's ``addfile``)."""

    def __init__(self, size: int):
        self.left = size

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n

    def readable(self) -> bool:
        return True
