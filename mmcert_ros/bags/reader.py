"""Read topics and messages from rosbag2 (MCAP, sqlite3) and ROS 1 bags.

Opening accepts a rosbag2 directory (with ``metadata.yaml``), a directory holding a single
``.mcap``/``.db3`` file and no metadata, a bare ``.mcap``/``.db3`` file, or a ROS 1 ``.bag``.
A bag that cannot be opened, whose storage breaks while reading, or that yields fewer messages
than its index lists raises :class:`BagError` naming the path; a single message that cannot
be deserialized is *returned* with its error instead (so callers can skip it, count it and go
on).

An MCAP bag that lost its end (no footer: the recorder was killed, the copy cut short) is
read from its start (:mod:`mmcert_ros.bags.mcap_salvage`): its topics count the readable
messages and :meth:`BagReader.messages` yields them. Where messages were lost,
:attr:`BagReader.truncated` says where reading stopped and :meth:`BagReader.messages` raises
:class:`BagError` after the last readable message, so a caller keeps what came before.
"""
from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from rosbags.highlevel import AnyReader, AnyReaderError

from mmcert_ros.bags.errors import BagError, BagNotFoundError, MissingTopicError
from mmcert_ros.bags.mcap_salvage import McapSalvage
from mmcert_ros.bags.messages import TYPESTORE

_STORAGE_SUFFIXES = ('.mcap', '.db3')
#: what ``rosbags`` says of an MCAP file whose footer or summary is missing or cut
_TRUNCATION_MARKS = ('File end magic is invalid', 'Invalid MCAP footer',
                     'Invalid MCAP summary offset')


@dataclass(frozen=True)
class TopicSummary:
    """One topic of a bag: its name, message type (``pkg/msg/Name``) and message count."""

    name: str
    msgtype: str | None
    count: int


@dataclass(frozen=True)
class BagMessage:
    """One message in log-time order.

    :ivar log_time_ns: the bag's receive (log) time in nanoseconds, not the header stamp.
    :ivar message: the deserialized message, or None when it could not be deserialized.
    :ivar error: why deserialization failed (None when ``message`` is set).
    """

    topic: str
    msgtype: str
    log_time_ns: int
    message: object | None
    error: str | None = None


class BagReader:
    """A bag opened for reading; use as a context manager.

    >>> with BagReader('drive_bag') as bag:
    ...     for item in bag.messages(['/camera/rgb']):
    ...         ...
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagNotFoundError(f'bag {self.path} does not exist')
        self._reader: AnyReader | None = None
        self._salvage: McapSalvage | None = None
        self._salvaged_topics: dict[str, TopicSummary] = {}
        #: where and why reading stops early (an MCAP file cut in its data), else None
        self.truncated: str | None = None

    def __enter__(self) -> BagReader:
        reader = AnyReader([_storage_path(self.path)], default_typestore=TYPESTORE)
        try:
            reader.open()
        except AnyReaderError as error:
            if not self._open_truncated(error):
                raise BagError(f'cannot open bag {self.path}: {error}') from None
            return self
        except (OSError, KeyError, ValueError, RuntimeError) as error:
            raise BagError(
                f'cannot open bag {self.path} (corrupt or not a bag?): '
                f'{type(error).__name__}: {error}') from None
        self._reader = reader
        return self

    def _open_truncated(self, error: AnyReaderError) -> bool:
        """Open an MCAP bag whose end is missing through :class:`McapSalvage` (one counting
        pass); False if this is not such a bag."""
        files = _mcap_files(self.path)
        if not files or not any(mark in str(error) for mark in _TRUNCATION_MARKS):
            return False
        try:
            salvage = McapSalvage(files)
        except (ValueError, OSError):
            return False
        counts: Counter[tuple[str, str]] = Counter(
            (message.topic, message.msgtype) for message in salvage.messages())
        self._salvaged_topics = {topic: TopicSummary(topic, msgtype, count)
                                 for (topic, msgtype), count in sorted(counts.items())}
        self.truncated = salvage.stopped
        self._salvage = salvage
        return True

    def __exit__(self, *exc_info) -> None:
        reader, self._reader = self._reader, None
        self._salvage = None
        if reader is not None:
            reader.close()

    @property
    def _open_reader(self) -> AnyReader:
        if self._reader is None:
            raise BagError(f'bag {self.path} is not open (use BagReader as a context manager)')
        return self._reader

    @property
    def topics(self) -> dict[str, TopicSummary]:
        """Every topic of the bag, by name (of a truncated bag: the readable messages)."""
        if self._salvage is not None:
            return dict(self._salvaged_topics)
        return {name: TopicSummary(name, info.msgtype, info.msgcount)
                for name, info in self._open_reader.topics.items()}

    def require_topics(self, names: Iterable[str], msgtype: str) -> None:
        """Raise unless every topic in ``names`` is in the bag with type ``msgtype``.

        :raises MissingTopicError: a topic is absent; the message lists the bag's topics.
        :raises BagError: a topic has another message type.
        """
        names = list(names)
        self._require_present(names)
        topics = self.topics
        wrong = [f'{name} is {topics[name].msgtype}' for name in names
                 if topics[name].msgtype != msgtype]
        if wrong:
            raise BagError(f'bag {self.path}: expected {msgtype}, but {"; ".join(wrong)}')

    def _require_present(self, names: list[str]) -> None:
        topics = self.topics
        missing = [name for name in names if name not in topics]
        if missing:
            available = ', '.join(f'{t.name} ({t.msgtype}, {t.count} msgs)'
                                  for t in topics.values()) or 'none'
            cut = f' (the bag is truncated: {self.truncated})' if self.truncated else ''
            raise MissingTopicError(
                f'bag {self.path} has no topic {", ".join(missing)}; '
                f'topics in the bag: {available}{cut}')

    def messages(self, names: Iterable[str]) -> Iterator[BagMessage]:
        """Messages of the named topics merged in log-time order.

        :raises MissingTopicError: a topic is absent (raised at once).
        :raises BagError: the storage is corrupt: raised where reading breaks, or after the
            last message when fewer messages were found than the bag's index lists, or (a
            truncated bag) after the last readable message.
        """
        names = list(names)
        if self._salvage is not None:
            self._require_present(names)
            return self._salvaged(names)
        reader = self._open_reader
        self._require_present(names)
        connections = [c for c in reader.connections if c.topic in names]
        return self._deserialized(reader, reader.messages(connections=connections), names)

    def _salvaged(self, names: list[str]) -> Iterator[BagMessage]:
        """The readable messages of an MCAP bag without its end, then (messages were lost)
        :class:`BagError` saying where reading stopped."""
        read = 0
        for item in self._salvage.messages():
            if item.topic not in names:
                continue
            read += 1
            try:
                message, problem = TYPESTORE.deserialize_cdr(item.raw, item.msgtype), None
            except (ValueError, IndexError, KeyError, TypeError, struct.error) as error:
                message, problem = None, f'{type(error).__name__}: {error}'
            yield BagMessage(item.topic, item.msgtype, item.log_time_ns, message, problem)
        if self.truncated:
            raise BagError(f'bag {self.path} is truncated: {self.truncated}; read the {read} '
                           'messages before it')

    def _deserialized(self, reader: AnyReader, stream, names: list[str]) -> Iterator[BagMessage]:
        expected = {name: self.topics[name].count for name in names}
        read: Counter[str] = Counter()
        while True:
            try:
                connection, log_time_ns, raw = next(stream)
            except StopIteration:
                break
            except (AnyReaderError, OSError, KeyError, ValueError, RuntimeError) as error:
                raise BagError(
                    f'bag {self.path} is corrupt: reading stopped after {sum(read.values())} '
                    f'messages with {type(error).__name__}: {error}') from None
            read[connection.topic] += 1
            try:
                message, problem = reader.deserialize(raw, connection.msgtype), None
            except (AnyReaderError, ValueError, IndexError, KeyError, TypeError) as error:
                message, problem = None, f'{type(error).__name__}: {error}'
            yield BagMessage(connection.topic, connection.msgtype, log_time_ns, message, problem)
        short = [f'{read[name]} of {count} on {name}' for name, count in expected.items()
                 if read[name] < count]
        if short:
            raise BagError(f'bag {self.path} is corrupt: only {", ".join(short)} listed '
                           'messages could be read')


def _mcap_files(path: Path) -> list[Path]:
    """The MCAP storage files of a bag path, in recording order (empty if it has none)."""
    if path.is_file():
        return [path] if path.suffix == '.mcap' else []
    listed = []
    try:
        info = yaml.safe_load((path / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
        listed = [path / name for name in info['relative_file_paths']]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        pass
    return [file for file in listed if file.suffix == '.mcap'] or sorted(path.glob('*.mcap'))


def _storage_path(path: Path) -> Path:
    """The path ``AnyReader`` should open: a directory without ``metadata.yaml`` but with a
    single storage file (as some recorders leave it) is read through that file."""
    if path.is_dir() and not (path / 'metadata.yaml').exists():
        files = sorted(p for p in path.iterdir() if p.suffix in _STORAGE_SUFFIXES)
        if len(files) == 1:
            return files[0]
        raise BagError(
            f'bag {path}: directory has no metadata.yaml and '
            f'{len(files)} .mcap/.db3 files (expected one)')
    return path
