"""Tar members written from one header template: the WebDataset shards' tar stream.

Written by hand because ``tarfile`` builds, encodes and checks every field of every member's header in Python
(``TarInfo.tobuf``), and ``webdataset.TarWriter`` stamped each member with the wall clock as a float, which
costs a pax header a member: that was most of the output step's CPU a document. Here every member has the same
mode, owner, group and a fixed mtime (so a shard's bytes depend only on its documents), and only the name and
the size change: the header is ``tarfile``'s own for these fields, made once, with those two and the checksum
filled in per member. The bytes equal ``tarfile``'s (``PAX_FORMAT``, which writes a plain ustar header when no
field needs pax) member for member, and the archive's end is its end-of-archive blocks padded to a record
(``tests/pipeline/test_writers_tar.py``); a name that ustar cannot hold (over 100 bytes or not ASCII) or a
member of 8 GiB or more goes through ``tarfile`` itself.
"""

from __future__ import annotations

import tarfile

BLOCK, RECORD = tarfile.BLOCKSIZE, tarfile.RECORDSIZE  # 512, 10240
MTIME = 0  # every member's mtime: fixed so that the same documents give the same tar bytes
_NAME, _SIZE, _CHKSUM = slice(0, 100), slice(124, 136), slice(148, 156)  # ustar header fields


class TarMembers:
    """Append ``(name, bytes)`` members to a binary stream as an uncompressed tar; :meth:`close` ends the archive
    (it does not close the stream)."""

    def __init__(self, fileobj, mode: int = 0o444, user: str = "bigdata", group: str = "bigdata",
                 mtime: int = MTIME):
        self.f = fileobj
        self.offset = 0
        self._info = dict(mode=mode, uname=user, gname=group, mtime=mtime)
        head = bytearray(self._tarinfo("", 0).tobuf(tarfile.PAX_FORMAT))
        head[_CHKSUM] = b" " * 8  # the checksum is the byte sum with this field as blanks
        self._mid, self._tail = bytes(head[100:124]), bytes(head[136:148])
        self._end = bytes(head[156:])
        self._sum = sum(head[100:124]) + sum(head[136:])  # what name and size do not change

    def _tarinfo(self, name: str, size: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.size = size
        for k, v in self._info.items():
            setattr(ti, k, v)
        return ti

    def header(self, name: str, size: int) -> bytes:
        """The header block(s) of a member: ``tarfile.TarInfo(...).tobuf(tarfile.PAX_FORMAT)``'s bytes."""
        raw = name.encode("utf-8", "surrogateescape")
        if len(raw) > 100 or not raw.isascii() or not 0 <= size < 8 ** 11:  # needs pax: tarfile writes it
            return self._tarinfo(name, size).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        size_field = b"%011o\0" % size
        chk = self._sum + sum(raw) + sum(size_field)
        return b"".join((raw, bytes(100 - len(raw)), self._mid, size_field, self._tail, b"%06o\0 " % chk,
                         self._end))

    def add(self, name: str, data: bytes) -> None:
        """Append one member (as ``tarfile.TarFile.addfile`` would)."""
        head = self.header(name, len(data))
        pad = -len(data) % BLOCK
        self.f.write(head)
        self.f.write(data)
        if pad:
            self.f.write(bytes(pad))
        self.offset += len(head) + len(data) + pad

    def close(self) -> None:
        """The end of the archive: two zero blocks, then zeros up to a whole record (as ``tarfile`` ends it)."""
        end = 2 * BLOCK + (-(self.offset + 2 * BLOCK) % RECORD)
        self.f.write(bytes(end))
        self.offset += end
