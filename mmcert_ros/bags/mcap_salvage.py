"""Read the readable part of an MCAP file that lost its end (a recorder killed mid-write, a
copy cut short, a full disk).

``rosbags`` opens an MCAP file through its footer and summary at the end, so a file without
them cannot be opened at all. :class:`McapSalvage` reads the records from the start instead
(schemas, channels, messages, and chunks of them, decompressed with ``rosbags``' own
decompressor and checksum check) until the first record that is cut off or damaged, and says
where and why it stopped. Everything before that point is returned; nothing after it is
guessed.

Record layout (MCAP specification, format version 0): an 8-byte magic, then records of
``opcode (uint8), length (uint64 LE), content``; strings are a uint32 LE length and UTF-8
bytes. Multi-byte integers are little-endian.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rosbags.rosbag2.errors import ReaderError
from rosbags.rosbag2.storage_mcap import decompress

MAGIC = b'\x89MCAP0\r\n'
_FOOTER, _SCHEMA, _CHANNEL, _MESSAGE, _CHUNK, _DATA_END = 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F
_RECORD_HEADER = struct.Struct('<BQ')


@dataclass(frozen=True)
class SalvagedMessage:
    """One message record: its topic, type (``pkg/msg/Name``), log time (ns) and CDR bytes."""

    topic: str
    msgtype: str
    log_time_ns: int
    raw: bytes


class _Cut(Exception):
    """A record is cut off or damaged; the message says where."""


class McapSalvage:
    """The readable messages of one or more MCAP files, read in order from their starts.

    :param files: the storage files of one bag, in recording order.
    :raises ValueError: a file does not start with the MCAP magic (not an MCAP file).
    """

    def __init__(self, files: Sequence[str | Path]) -> None:
        self.files = [Path(path) for path in files]
        for path in self.files:
            with path.open('rb') as stream:
                if stream.read(len(MAGIC)) != MAGIC:
                    raise ValueError(f'{path} is not an MCAP file (no MCAP magic at its start)')
        #: why reading stopped before the end of the last file; None while it has not
        self.stopped: str | None = None

    def messages(self) -> Iterator[SalvagedMessage]:
        """Every readable message, file by file, each chunk's messages in log-time order.

        Sets :attr:`stopped` when a record is cut off or damaged, or a file ends before its
        data-end record or footer; reading ends there. A file cut after its data section
        (only the summary lost) is read completely and leaves :attr:`stopped` None.
        """
        self.stopped = None
        for path in self.files:
            data = path.read_bytes()
            schemas: dict[int, str] = {}
            channels: dict[int, tuple[str, str]] = {}
            try:
                ended = yield from self._records(data, len(MAGIC), schemas, channels, path)
            except _Cut as cut:
                self.stopped = f'{path.name}: {cut}'
                return
            if not ended:
                self.stopped = (f'{path.name} ends at byte {len(data)}, before the end of its '
                                'data (the file was cut short)')
                return

    def _records(self, data: bytes, offset: int, schemas: dict[int, str],
                 channels: dict[int, tuple[str, str]], path: Path, in_chunk: bool = False):
        """Yield the messages of the records in ``data[offset:]``; return True at the end of
        the data section (a data-end record or the footer).

        :raises _Cut: a record is cut off or damaged (the message gives its byte offset).
        """
        while offset < len(data):
            start = offset
            if len(data) - offset < _RECORD_HEADER.size:
                raise _Cut(f'a record is cut off at byte {start} of {len(data)}')
            opcode, length = _RECORD_HEADER.unpack_from(data, offset)
            offset += _RECORD_HEADER.size
            if length > len(data) - offset:
                what = 'chunk' if opcode == _CHUNK else 'record'
                raise _Cut(f'the {what} at byte {start} is cut off ({len(data) - offset} of '
                           f'{length} bytes present)')
            content = data[offset:offset + length]
            offset += length
            try:
                if opcode in (_DATA_END, _FOOTER) and not in_chunk:
                    return True
                if opcode == _SCHEMA:
                    (key,) = struct.unpack_from('<H', content)
                    schemas[key], _ = _string(content, 2)
                elif opcode == _CHANNEL:
                    key, schema = struct.unpack_from('<HH', content)
                    topic, _ = _string(content, 4)
                    channels[key] = (topic, schemas.get(schema, ''))
                elif opcode == _MESSAGE:
                    channel, _, log_time, _ = struct.unpack_from('<HIQQ', content)
                    if channel in channels:
                        yield SalvagedMessage(*channels[channel], log_time, content[22:])
                elif opcode == _CHUNK and not in_chunk:
                    records = _chunk_records(content)
                    messages = list(self._records(records, 0, schemas, channels, path, True))
                    yield from sorted(messages, key=lambda message: message.log_time_ns)
            except (struct.error, UnicodeDecodeError, ReaderError) as error:
                raise _Cut(f'the record at byte {start} is damaged ({error})') from None
        return False


def _string(content: bytes, offset: int) -> tuple[str, int]:
    """The string at ``offset`` and the offset after it."""
    (size,) = struct.unpack_from('<I', content, offset)
    end = offset + 4 + size
    if end > len(content):
        raise struct.error('string runs past its record')
    return content[offset + 4:end].decode(), end


def _chunk_records(content: bytes) -> bytes:
    """The decompressed, checksum-checked records of a chunk record's content."""
    _, _, size, crc = struct.unpack_from('<QQQI', content)
    compression, offset = _string(content, 28)
    (compressed_size,) = struct.unpack_from('<Q', content, offset)
    offset += 8
    if offset + compressed_size > len(content):
        raise struct.error('chunk data runs past its record')
    return decompress(content[offset:offset + compressed_size], compression, size, crc)
