"""``hf-dataset``: an image–caption dataset read through Hugging Face ``datasets``.

From the Hub by id (``datasets.load_dataset``) or from a folder written by ``save_to_disk``
(``datasets.load_from_disk``). Options name the image column, the caption column (a string or
a list of strings per row), an optional id column, and how the harness's split names map onto
the dataset's: its own splits, or the values of a column (``nlphuji/flickr30k`` is one table
whose ``split`` column says train / val / test).

Image cells are read undecoded (``datasets.Image(decode=False)``), as the bytes the dataset
holds: PIL checks them and they go to the `ImageStore`, whose files the image backbones read. A
cell that names an existing file is used where it lies.

Needs the ``hf`` extra (``pip install 'itr-harness[hf]'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from baselines.datasets.captioned_images import (
    CaptionedImage,
    caption_list,
    retrieval_split,
)
from baselines.datasets.image_store import ImageStore
from harness.errors import UserError, closest
from harness.interfaces import RetrievalSplit

HUB_URL = "https://huggingface.co/datasets/"
UNNAMED_SPLIT = "test"
"""The split name of a saved table that records none: a lone table is most often a test set."""


def hf_dataset(
    *,
    hub: str | None = None,
    path: str | None = None,
    config: str | None = None,
    revision: str | None = None,
    name: str | None = None,
    image_column: str = "image",
    caption_column: str = "caption",
    id_column: str | None = None,
    splits: dict[str, str] | None = None,
    split_column: str | None = None,
    image_store: str | None = None,
) -> HuggingFaceDataset:
    """The ``hf-dataset`` dataset factory (registered as ``hf-dataset``).

    Args:
        hub: a Hub dataset id (``nlphuji/flickr30k``); give this or `path`.
        path: a folder written by ``save_to_disk`` (a ``Dataset`` or a ``DatasetDict``).
        config: the Hub dataset's configuration name, if it has several.
        revision: the Hub dataset's revision (a branch, tag or commit).
        name: the dataset's name in results and messages (default: the Hub id or the folder's name).
        image_column: the column holding each row's image.
        caption_column: the column holding each row's caption, or a list of them.
        id_column: a column holding each row's image id (default: the row's number in its split).
        splits: harness split -> the dataset's split (or `split_column` value), e.g.
            ``{test = "validation"}`` (default: the dataset's own names).
        split_column: read splits from this column's values instead of the dataset's splits.
        image_store: the folder the images are kept in (default: ``images/`` in the feature cache).
    """
    if (hub is None) == (path is None):
        raise UserError(
            "dataset 'hf-dataset': give either option hub (a Hub dataset id) or option path (a save_to_disk folder)"
        )
    try:
        import datasets  # noqa: F401  (checked here, so a missing extra stops the run before it starts)
    except ImportError:
        raise UserError(
            "dataset 'hf-dataset' needs the Hugging Face datasets package: pip install 'itr-harness[hf]'"
        ) from None
    reader: _TableReader = (
        _HubReader(hub, config, revision)
        if hub is not None
        else _DiskReader(Path(path).expanduser())
    )
    columns = _Columns(image_column, caption_column, id_column)
    store = ImageStore(Path(image_store) if image_store is not None else None)
    return HuggingFaceDataset(
        name or reader.default_name,
        reader,
        columns,
        dict(splits or {}),
        split_column,
        store,
    )


class _TableReader(Protocol):
    """Where the tables come from, and how the source is named in messages and in MLflow."""

    default_name: str
    source: str
    where: str

    def read(self) -> Mapping[str, Any]:
        """The dataset's tables (``datasets.Dataset``) by split name."""


class _HubReader:
    """The splits of a Hub dataset (downloaded into the Hugging Face cache on first use)."""

    def __init__(self, hub: str, config: str | None, revision: str | None) -> None:
        self.hub, self.config, self.revision = hub, config, revision
        self.default_name = hub
        self.source = HUB_URL + hub
        self.where = f"Hub dataset {hub}"

    def read(self) -> Mapping[str, Any]:
        import datasets

        try:
            return datasets.load_dataset(self.hub, self.config, revision=self.revision)
        except (OSError, ValueError) as exc:  # DatasetNotFoundError is an OSError
            raise UserError(
                f"{self.where}: cannot be loaded ({str(exc).splitlines()[0]})"
            ) from None


class _DiskReader:
    """The splits of a folder written by ``save_to_disk``: a ``DatasetDict`` or one table."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.default_name = folder.name
        self.source = str(folder.resolve())
        self.where = str(folder)

    def read(self) -> Mapping[str, Any]:
        import datasets

        try:
            loaded = datasets.load_from_disk(str(self.folder))
        except (OSError, ValueError) as exc:
            raise UserError(
                f"{self.folder}: not a dataset written by save_to_disk ({exc})"
            ) from None
        if isinstance(loaded, datasets.Dataset):
            return {str(loaded.split or UNNAMED_SPLIT): loaded}
        return loaded


@dataclass(frozen=True)
class _Columns:
    """The columns a split is read from."""

    image: str
    caption: str
    image_id: str | None

    def names(self) -> list[str]:
        return [self.image, self.caption] + ([self.image_id] if self.image_id else [])


class HuggingFaceDataset:
    """The splits of one Hugging Face dataset (see the module docstring).

    Args:
        name: the dataset's name in results.
        reader: where the tables come from (the Hub or a folder).
        columns: the image, caption and id columns.
        split_names: harness split -> the dataset's split or `split_column` value (empty: the same names).
        split_column: the column whose values are the splits, or None.
        store: where the images are kept as files.
    """

    def __init__(
        self,
        name: str,
        reader: _TableReader,
        columns: _Columns,
        split_names: Mapping[str, str],
        split_column: str | None,
        store: ImageStore,
    ) -> None:
        self.name, self.reader, self.columns, self.store = name, reader, columns, store
        self.split_names, self.split_column = dict(split_names), split_column
        self._tables: Mapping[str, Any] | None = None

    def source(self, split: str) -> str:
        """Where the data lies, for the MLflow run input: the Hub page or the folder."""
        return self.reader.source

    def tables(self) -> Mapping[str, Any]:
        """The dataset's tables by split name, read once."""
        if self._tables is None:
            self._tables = self.reader.read()
        return self._tables

    def splits(self) -> list[str]:
        return list(self.split_names) or self._source_splits()

    def _source_splits(self) -> list[str]:
        if self.split_column is None:
            return list(self.tables())
        return sorted(
            {str(value) for value in self._table_of_column()[self.split_column]}
        )

    def _table_of_column(self) -> Any:
        """The one table whose `split_column` says which split each row is in."""
        tables = self.tables()
        if len(tables) != 1:
            raise UserError(
                f"{self.reader.where}: option split_column needs a dataset of one table; it has the splits {', '.join(tables)}"
            )
        [(split, table)] = tables.items()
        _require_columns(
            table, [self.split_column], f"{self.reader.where}: split '{split}'"
        )
        return table

    def load(self, split: str) -> RetrievalSplit:
        """Read one split, row by row; a missing column or a bad cell is one `UserError` naming it."""
        table, where = self._table(split)
        _require_columns(table, self.columns.names(), where)
        import datasets

        if isinstance(table.features[self.columns.image], datasets.Image):
            table = table.cast_column(self.columns.image, datasets.Image(decode=False))
        images = [
            self._captioned(row, number, f"{where} row {number}")
            for number, row in enumerate(table.select_columns(self.columns.names()))
        ]
        if not images:
            raise UserError(f"{where}: no rows")
        return retrieval_split(self.name, split, images)

    def _table(self, split: str) -> tuple[Any, str]:
        """The rows of harness split `split`, and how messages name them."""
        if self.split_names and split not in self.split_names:
            raise UserError(
                f"{self.reader.where}: no split '{split}'{closest(split, self.split_names)}; option splits names {', '.join(self.split_names)}"
            )
        wanted = self.split_names.get(split, split)
        if self.split_column is not None:
            table = self._table_of_column()
            rows = [
                number
                for number, value in enumerate(table[self.split_column])
                if str(value) == wanted
            ]
            if not rows:
                raise UserError(
                    f"{self.reader.where}: no row has {self.split_column} = '{wanted}'; values: {', '.join(self._source_splits())}"
                )
            where = f"{self.reader.where}: split '{wanted}' ({self.split_column})"
            return table.select(rows, keep_in_memory=True), where
        tables = self.tables()
        if wanted not in tables:
            raise UserError(
                f"{self.reader.where}: no split '{wanted}'{closest(wanted, tables)}; splits: {', '.join(tables)}"
            )
        return tables[wanted], f"{self.reader.where}: split '{wanted}'"

    def _captioned(
        self, row: Mapping[str, Any], number: int, where: str
    ) -> CaptionedImage:
        image_id = (
            str(row[self.columns.image_id]) if self.columns.image_id else str(number)
        )
        return CaptionedImage(
            image_id,
            self._image_file(row[self.columns.image], where),
            caption_list(
                row[self.columns.caption], f"{where}: column '{self.columns.caption}'"
            ),
        )

    def _image_file(self, cell: Any, where: str) -> Path:
        """The file of an image cell: encoded bytes (kept in the store), or a path to an existing file."""
        where = f"{where}: column '{self.columns.image}'"
        if isinstance(
            cell, dict
        ):  # an undecoded datasets.Image: {"bytes": ..., "path": ...}
            cell = cell.get("bytes") or cell.get("path")
        if isinstance(cell, (bytes, bytearray)):
            return self.store.add(bytes(cell), where)
        if isinstance(cell, str) and Path(cell).expanduser().is_file():
            return Path(cell).expanduser()
        shown = (
            f"'{cell}' (not a file)" if isinstance(cell, str) else type(cell).__name__
        )
        raise UserError(
            f"{where}: expected an image (encoded bytes or an image file path), got {shown}"
        )


def _require_columns(table: Any, names: list[str | None], where: str) -> None:
    """Raise naming the first of `names` that `table` lacks, and the columns it has."""
    for column in names:
        if column not in table.column_names:
            raise UserError(
                f"{where} has no column '{column}'{closest(str(column), table.column_names)}; "
                f"columns: {', '.join(table.column_names)}"
            )
