"""A DataTable updated row by row, by key: live data never resets the operator's cursor or scroll.

`sync_rows` diffs the wanted rows against what is shown: it removes vanished keys, updates only the
cells that changed, appends new keys, and re-sorts only when the order actually differs, then puts
the cursor back on the row it was on. It never clears and refills.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import ClassVar, TypeVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowDoesNotExist

Cells = Sequence[Text]
T = TypeVar("T")
REBUILD_THRESHOLD = 200


class KeyedTable(DataTable[Text]):
    """Row-cursor table whose rows are identified by string keys."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open", id="table.open"),
        Binding("down", "cursor_down", "Down", show=False, id="table.down"),
        Binding("j", "cursor_down", "Down", show=False, id="table.down"),
        Binding("up", "cursor_up", "Up", show=False, id="table.up"),
        Binding("k", "cursor_up", "Up", show=False, id="table.up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="table.page_down"),
        Binding("pageup", "page_up", "Page up", show=False, id="table.page_up"),
        Binding("home", "scroll_top", "First row", show=False, id="table.first"),
        Binding("end", "scroll_bottom", "Last row", show=False, id="table.last"),
    ]
    # Columns whose plain texts identify a row; used to put rows in the wanted order with `sort`.
    IDENTITY_COLUMNS: ClassVar[tuple[str, ...]] = ("id",)
    # (key, label, width) of each column; the FILL_COLUMN takes whatever width the others leave.
    COLUMNS: ClassVar[tuple[tuple[str, str, int], ...]] = ()
    FILL_COLUMN: ClassVar[str | None] = None
    FILL_MIN = 10
    SHOW_HEADER: ClassVar[bool] = True
    SHOW_CURSOR: ClassVar[bool] = True

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(
            id=id,
            classes=classes,
            cursor_type="row",
            zebra_stripes=False,
            show_header=self.SHOW_HEADER,
            show_cursor=self.SHOW_CURSOR,
        )
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._signatures: dict[str, Hashable] = {}
        self._order: list[str] = []
        self._heights: dict[str, int] = {}  # only rows taller than one line

    def on_mount(self) -> None:
        for key, label, width in self.COLUMNS:
            self.add_column(label, width=width, key=key)

    def on_resize(self) -> None:
        self.fit_fill_column()

    def fit_fill_column(self) -> None:
        if self.FILL_COLUMN is None or not self.COLUMNS:
            return
        available = self.scrollable_content_region.width
        others = sum(width for key, _, width in self.COLUMNS if key != self.FILL_COLUMN)
        padding = 2 * self.cell_padding * len(self.COLUMNS)
        self.set_column_width(self.FILL_COLUMN, max(self.FILL_MIN, available - others - padding))

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if not self._order or self.row_count == 0:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except (RowDoesNotExist, LookupError):
            return None
        return row_key.value

    def select_key(self, key: str, *, scroll: bool = True) -> bool:
        """Move the cursor to the row with `key`; False when there is no such row."""
        if key not in self._cells:
            return False
        index = self.get_row_index(key)
        if index != self.cursor_row:
            self.move_cursor(row=index, animate=False, scroll=scroll)
        return True

    def sync_rows(self, rows: Sequence[tuple[str, Cells]]) -> None:
        """Rows given as cells; a row is rewritten where any cell differs."""
        self.sync(rows, key=lambda row: row[0], signature=lambda row: tuple(row[1]), cells=lambda row: row[1])

    def sync(
        self,
        items: Sequence[T],
        *,
        key: Callable[[T], str],
        signature: Callable[[T], Hashable],
        cells: Callable[[T], Cells],
        height: Callable[[T], int] | None = None,
    ) -> None:
        """Show `items` in this order. `signature` is a cheap summary of what a row shows: rows whose
        signature did not change are not even rebuilt, so a 10 000-row table costs little to update.
        `height` gives a row's height in lines (default 1); a row whose height changes is re-added,
        since DataTable cannot resize a row in place. The signature must cover the height."""
        selected = self.selected_key
        order = [key(item) for item in items]
        wanted = set(order)
        removed = [k for k in self._signatures if k not in wanted]
        if len(removed) > REBUILD_THRESHOLD and len(removed) > len(order):
            # Most rows went (a filter was typed): one clear beats thousands of O(n) removals.
            self.clear()
            self._signatures.clear()
            self._cells.clear()
            self._heights.clear()
            self._order = []
        else:
            for k in removed:
                self._forget(k)
        column_keys = list(self.columns)
        appended: list[str] = []
        for k, item in zip(order, items, strict=True):
            sig = signature(item)
            old = self._signatures.get(k)
            if old is not None and old == sig:
                continue
            row = tuple(cells(item))
            lines = 1 if height is None else height(item)
            if old is not None and self._heights.get(k, 1) != lines:
                self._forget(k)
                old = None
            if old is None:
                self.add_row(*row, key=k, height=lines)
                appended.append(k)
                if lines != 1:
                    self._heights[k] = lines
            else:
                for column, before, after in zip(column_keys, self._cells[k], row, strict=True):
                    if before != after:
                        self.update_cell(k, column, after)
            self._signatures[k] = sig
            self._cells[k] = row
        readded = set(appended)
        shown = [k for k in self._order if k in wanted and k not in readded] + appended
        if shown != order:
            self._sort_to(order)
        self._order = order
        if selected is not None and selected in self._cells:
            self.select_key(selected, scroll=False)

    def _forget(self, key: str) -> None:
        self.remove_row(key)
        del self._signatures[key]
        del self._cells[key]
        self._heights.pop(key, None)

    def _sort_to(self, order: list[str]) -> None:
        positions = {key: n for n, key in enumerate(order)}
        index = [list(self.columns).index(ColumnKey(c)) for c in self.IDENTITY_COLUMNS]
        by_identity = {tuple(self._cells[key][i].plain for i in index): positions[key] for key in order}

        def position(values: object) -> int:
            cells = values if isinstance(values, tuple) else (values,)
            return by_identity.get(tuple(c.plain for c in cells), len(order))

        self.sort(*self.IDENTITY_COLUMNS, key=position)

    def set_column_width(self, key: str, width: int) -> None:
        """Resize one fixed-width column (the goal column fills what the others leave).

        DataTable has no call for this, so it is done with its public parts only: the column's `width`,
        the scrollable `virtual_size` (the sum of the columns' render widths, as DataTable computes it;
        the height is unchanged), and `notify_style_update`, which drops the cached rendered rows.
        """
        column = self.columns.get(ColumnKey(key))
        width = max(1, width)
        if column is None or column.width == width:
            return
        column.width = width
        total = sum(c.get_render_width(self) for c in self.columns.values())
        self.virtual_size = Size(total, self.virtual_size.height)
        self.notify_style_update()
