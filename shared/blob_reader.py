"""A seekable, read-only file over a blob, fetching byte ranges on demand.

zipfile needs to seek (the central directory is at the end); reading through this keeps memory
at a few blocks however large the export is.
"""

from __future__ import annotations

import io
from collections import OrderedDict

from azure.storage.blob import BlobClient


class BlobRangeReader(io.RawIOBase):
    def __init__(self, blob: BlobClient, size: int | None = None,
                 block_size: int = 4 * 1024 * 1024, cached_blocks: int = 4) -> None:
        self._blob = blob
        self._size = size if size is not None else int(blob.get_blob_properties().size)
        self._block_size = block_size
        self._cached_blocks = cached_blocks
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._pos = 0
        self.ranges_fetched = 0

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        elif whence == io.SEEK_END:
            self._pos = self._size + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if self._pos < 0:
            raise ValueError("negative seek position")
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        written = 0
        while written < len(view) and self._pos < self._size:
            index, offset = divmod(self._pos, self._block_size)
            block = self._block(index)
            chunk = block[offset: offset + len(view) - written]
            if not chunk:
                break
            view[written: written + len(chunk)] = chunk
            written += len(chunk)
            self._pos += len(chunk)
        return written

    def _block(self, index: int) -> bytes:
        block = self._blocks.get(index)
        if block is not None:
            self._blocks.move_to_end(index)
            return block
        start = index * self._block_size
        length = min(self._block_size, self._size - start)
        block = self._blob.download_blob(offset=start, length=length).readall()
        self.ranges_fetched += 1
        self._blocks[index] = block
        if len(self._blocks) > self._cached_blocks:
            self._blocks.popitem(last=False)
        return block
