"""Parquet footers read once by the reads of one source that need them.

A file's footer holds its schema, its row count and its row groups' statistics; reading it
is a read at the end of the file (a round trip or two for a ``gs://`` object). The ``resolve``
step checks a source's input limits (`retrain.data.limits.check_source`), then counts its
events per window (`retrain.data.source.window_counts`), and both need every file's footer:
a `ParquetFooters` passed to both keeps each footer as it is first read, so each file's
footer is read once, whichever of them reads it first.

A file replaced or rewritten since its footer was read is read anew: a footer is kept with
the file's identity (local: device, inode, size, modification time, taken before the read;
gs://: the object's generation in the listing it was read from), and one whose file no longer
has it (a later listing names another generation) is dropped. Its row groups read with the
old footer's offsets would be another file's bytes: an unreadable page, or a count of neither
version.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from retrain.data.io import SourceFile
from retrain.errors import ValidationError

__all__ = ["FileStamp", "Footer", "ParquetFooters", "column_position", "file_stamp"]

#: A local file's identity: device, inode, size and modification time (ns).
FileStamp = tuple[int, int, int, int]


def file_stamp(stat: os.stat_result) -> FileStamp:
    """The identity of a local file as `os.stat` gave it."""
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


class Footer:
    """One Parquet file's footer, and reads of its row groups that do not read it again.

    Read either through a dataset fragment (`of_fragment`, as the windowed reads open a
    source) or as `pyarrow.parquet` reads it (`of_file`, as the input-limit check does).
    """

    def __init__(
        self,
        metadata: pq.FileMetaData,
        schema: pa.Schema,
        *,
        fragment: ds.ParquetFileFragment | None = None,
        path: Path | None = None,
        stamp: FileStamp | None = None,
    ) -> None:
        self.metadata = metadata
        self.schema = schema  # the Arrow schema a read of the file gives (physical schema)
        self.stamp = stamp  # a local file's identity before the footer was read
        self._fragment = fragment
        self._path = path

    @classmethod
    def of_fragment(
        cls, fragment: ds.ParquetFileFragment, stamp: FileStamp | None = None
    ) -> Footer:
        """The footer of a fragment, read now unless the fragment has read it; `stamp`: the
        local file's identity taken before the fragment was made.

        Raises:
            pyarrow.ArrowException, OSError: the footer is not readable.
        """
        schema = fragment.physical_schema  # reads the footer; the fragment keeps it
        return cls(fragment.metadata, schema, fragment=fragment, stamp=stamp)

    @classmethod
    def of_file(cls, path: Path, metadata: pq.FileMetaData, stamp: FileStamp) -> Footer:
        """The footer of a local file, already read as `metadata`; `stamp` taken before."""
        return cls(metadata, metadata.schema.to_arrow_schema(), path=path, stamp=stamp)

    def read(self, columns: list[str]) -> pa.Table:
        """The `columns` of every row group: their column chunks only, not the footer."""
        if self._fragment is not None:
            return self._fragment.to_table(columns=columns)
        assert self._path is not None
        return pq.ParquetFile(self._path, metadata=self.metadata).read(columns=columns)

    def read_row_group(self, index: int, columns: list[str]) -> pa.Table:
        """The `columns` of row group `index`: its column chunks only, not the footer."""
        if self._fragment is not None:
            return self._fragment.subset(row_group_ids=[index]).to_table(columns=columns)
        assert self._path is not None
        reader = pq.ParquetFile(self._path, metadata=self.metadata)  # the footer is not read
        return reader.read_row_group(index, columns=columns)


class ParquetFooters:
    """The footers of a source's files read so far, by file: pass one to every read of the
    source that needs them (the input-limit check, the window count), so that none reads a
    footer another has read. Files are known by their URI."""

    def __init__(self) -> None:
        self._read: dict[str, tuple[Footer, int | None]] = {}

    def get(self, file: SourceFile) -> Footer | None:
        """The file's footer if it has been read and the file is still the one read (local:
        the same identity now; gs://: the same generation in `file`'s listing), else None (a
        footer whose file changed is dropped)."""
        kept = self._read.get(file.uri)
        if kept is None:
            return None
        footer, generation = kept
        if file.generation is not None or generation is not None:
            same = file.generation == generation
        elif footer.stamp is None or file.path is None:
            return footer
        else:
            try:
                same = file_stamp(os.stat(file.path)) == footer.stamp
            except OSError:  # gone: the read that follows says so, as for any file
                same = False
        if not same:
            del self._read[file.uri]
            return None
        return footer

    def keep(self, file: SourceFile, footer: Footer) -> Footer:
        """Keep `footer` as the file's (read by the caller from `file`, of its generation)."""
        self._read[file.uri] = (footer, file.generation)
        return footer


def column_position(metadata: pq.FileMetaData, column: str) -> int:
    """The index of top-level `column` among a row group's column chunks (the leaves of the
    schema: a struct or map column before it has one chunk per leaf).

    Counted by top-level field, not matched by dotted path: a struct ``a`` with a field ``b``
    has the leaf path ``a.b`` too, which a top-level column named ``a.b`` must not take.

    Raises:
        ValidationError: `column` is not a plain (leaf) column of the file.
    """
    position = 0
    for field in metadata.schema.to_arrow_schema():
        if field.name == column and _leaves(field.type) == 1:
            if metadata.schema.column(position).path == column:
                return position
            break  # the Arrow and Parquet schemas disagree: not a column this can place
        position += _leaves(field.type)
    raise ValidationError(f"time column {column!r} is not a plain column of the parquet source")


def _leaves(kind: pa.DataType) -> int:
    """How many Parquet leaf columns (column chunks) a field of Arrow type `kind` has."""
    if pa.types.is_struct(kind):
        return sum(_leaves(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_map(kind):
        return _leaves(kind.key_type) + _leaves(kind.item_type)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _leaves(kind.value_type)
    return 1
