"""Reading `/approve`-style commands out of a pull request comment (DESIGN section 2).

A command is a line that starts (after at most three spaces) with `/` and a known
command word. Before looking, everything a reader does not see as plain text is set
aside, so that quoting, documenting or hiding a command never votes: fenced and
indented code blocks, inline code, `>` quotes and HTML comments. Blocks are found as
GitHub's CommonMark finds them, list items included: "- ```" opens a fence in an item,
and a line right under quoted text goes on in the quote unless it starts a block of its
own ("> I agree" then "/approve" is all quoted).
"""

from __future__ import annotations

import bisect
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

from .characters import storable

MAX_REASON_LENGTH = 500

# Stands in for hidden inline text (a code span, an HTML comment) on its line, so that
# whatever follows it is never taken for the start of a line.
ELISION = "…"


class CommandKind(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    ABSTAIN = "abstain"
    RETRACT = "retract"
    HOLD = "hold"
    UNHOLD = "unhold"
    PROMOTE = "promote"
    STATUS = "status"
    HELP = "help"


VOTE_KINDS = frozenset({CommandKind.APPROVE, CommandKind.REJECT, CommandKind.ABSTAIN, CommandKind.RETRACT})

# Commands that carry no free text: whatever follows them is ignored.
_NO_REASON = frozenset({CommandKind.RETRACT, CommandKind.STATUS, CommandKind.HELP})
# `/approve cancel` and friends withdraw the vote instead of casting one.
_CANCELLABLE = frozenset({CommandKind.APPROVE, CommandKind.REJECT, CommandKind.ABSTAIN})
_FORCE_FLAG = "--force"


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    reason: str = ""
    force: bool = False

    @property
    def is_vote(self) -> bool:
        """Approve, reject, abstain or retract: a command that changes the tally."""
        return self.kind in VOTE_KINDS


HELP_TEXT = """\
**Pinkflow governance commands** (at the start of a line in a pull request comment):

- `/approve [reason]`: vote for promoting this preview to production (eligible voters)
- `/reject [reason]`: vote against (eligible voters)
- `/abstain [reason]`: count toward the quorum without taking a side (eligible voters)
- `/retract` (or `/approve cancel`, `/reject cancel`): withdraw your own vote (the voter)
- `/hold [reason]`: block promotion whatever the tally (write permission or above)
- `/unhold`: lift a hold (write permission or above)
- `/promote`: promote the preview to production once the vote has passed (`promote.permission`, default write)
- `/promote --force`: promote without a passing vote, audited (admins, only where `promote.allow_force: true`)
- `/status`: refresh the status comment and check run (anyone)
- `/help`: show this list (anyone)

Your latest vote is the one that counts. Commands inside code, HTML comments or a `>` quote are ignored, and a line right under a quote (no blank line between) is in the quote, as GitHub shows it.
Counted commands show in the status comment and check run; a 😕 reaction means a command was not counted, and the status comment says why.
"""


# --- Finding the text a reader sees -------------------------------------------------

# A line opens list items with markers ("- ", "1. ", "* 1) "), and may open a fence right
# after them ("- ```"): what the fence holds is code, inside the item, however it is indented.
_LIST_MARKER = re.compile(r"(?:[-+*]|(?P<number>\d{1,9})[.)])(?=[ \t]|$)")
_HEADING = re.compile(r"#{1,6}(?:[ \t]|$)")
_UNDERLINE = re.compile(r"(?:=+|-+)[ \t]*")  # under a paragraph line, makes it a heading
_SPACES = re.compile(r"[ \t]*")
_COMMENT = "<!--"  # opens an HTML comment
_FENCE = re.compile(r"(?P<fence>`{3,}|~{3,})(?P<info>.*)")
# The tags that open an HTML block running to a blank line (CommonMark's sixth kind).
_HTML_BLOCK_TAGS = (
    "address|article|aside|base|basefont|blockquote|body|caption|center|col|colgroup|dd|details|dialog|dir|div|dl"
    "|dt|fieldset|figcaption|figure|footer|form|frame|frameset|h1|h2|h3|h4|h5|h6|head|header|hr|html|iframe|legend"
    "|li|link|main|menu|menuitem|nav|noframes|ol|optgroup|option|p|param|section|source|summary|table|tbody|td"
    "|tfoot|th|thead|title|tr|track|ul"
)
_ATTRIBUTE = r"""(?:[ \t]+[A-Za-z_:][A-Za-z0-9_.:-]*(?:[ \t]*=[ \t]*(?:[^ \t"'=<>`]+|'[^']*'|"[^"]*"))?)"""
# A tag alone on its line (any name): an HTML block too, but one that cannot end a paragraph.
_LONE_TAG = re.compile(rf"<(?:[A-Za-z][A-Za-z0-9-]*{_ATTRIBUTE}*[ \t]*/?|/[A-Za-z][A-Za-z0-9-]*[ \t]*)>[ \t]*")
_FENCE_CLOSE = re.compile(r"(?P<fence>`{3,}|~{3,})[ \t]*")
# A table's delimiter row ("|---|:-:|"): under a paragraph line with as many cells, a table.
_TABLE_DELIMITER = re.compile(r"[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*")
_CELL_BORDER = re.compile(r"(?<!\\)\|")
_INLINE = re.compile(r"`+|<!--")
_BACKTICKS = re.compile(r"`+")
_COMMAND = re.compile(r"^ {0,3}/(?P<word>[A-Za-z]+)(?=\s|$)")


@dataclass(frozen=True)
class _HtmlBlock:
    """An HTML block other than a comment: the line that ends it holds `end` (None: a blank
    line ends it). GitHub shows its text, so only a quote's reading needs it: a quote that
    ends in one takes no lazy line."""

    end: re.Pattern[str] | None
    interrupts: bool = True  # does it end a paragraph (a lone tag does not)


_HTML_BLOCKS = (  # how each kind starts, CommonMark's first to sixth
    (re.compile(r"<(?:script|pre|style|textarea)(?:[ \t>]|$)", re.I), _HtmlBlock(re.compile(r"</(?:script|pre|style|textarea)>", re.I))),
    (re.compile(r"<\?"), _HtmlBlock(re.compile(r"\?>"))),
    (re.compile(r"<![A-Z]"), _HtmlBlock(re.compile(">"))),
    (re.compile(r"<!\[CDATA\[", re.I), _HtmlBlock(re.compile(r"\]\]>"))),
    (re.compile(rf"</?(?:{_HTML_BLOCK_TAGS})(?:[ \t]|/?>|$)", re.I), _HtmlBlock(None)),
)
_LONE_TAG_BLOCK = _HtmlBlock(None, interrupts=False)


def _html_block(line: str, position: int) -> _HtmlBlock | None:
    """The HTML block (not a comment) that `line` opens at `position`, if any."""
    if not line.startswith("<", position):
        return None
    for start, block in _HTML_BLOCKS:
        if start.match(line, position):
            return block
    return _LONE_TAG_BLOCK if _LONE_TAG.fullmatch(line, position) else None


def _is_blank(line: str) -> bool:
    return not line.strip(" \t")


def _advance(column: int, text: str) -> int:
    """The column after `text` when it starts at `column`, tabs stopping every 4 columns."""
    for char in text:
        column += 4 - column % 4 if char == "\t" else 1
    return column


def _indent_width(line: str) -> int:
    return _advance(0, line[: len(line) - len(line.lstrip(" \t"))])


@dataclass(frozen=True)
class _BlockStart:
    """How a line begins, read inside a list item whose content starts at some column."""

    quoted: str | None = None  # after a `>` (maybe in the items it opens): the quote's text on the line
    comment: bool = False  # "<!--": an HTML block, up to the line that closes it (or its item's end)
    html: _HtmlBlock | None = None  # another HTML block ("<div>", "<pre>"), maybe in the items it opens
    line_block: bool = False  # a thematic break ("---") or a heading ("# Title"), maybe in the items it opens
    underline: bool = False  # "===" or "---": under a paragraph line, it ends the paragraph
    items: tuple[int, ...] = ()  # content columns of the list items it opens ("- 1. x": 2, 5)
    number: int | None = None  # the first item's number, when it is numbered
    empty_item: bool = False  # markers and nothing after them
    code_item: bool = False  # markers and then indented code ("-     x")
    fence: str | None = None  # the fence it opens, after those markers

    @property
    def quote(self) -> bool:
        return self.quoted is not None

    def interrupts(self, *, in_paragraph: bool) -> bool:
        """Does this line end an open paragraph? `in_paragraph`: the line is within the
        list item that holds the paragraph (else it can only close it)."""
        # A lone tag cannot end a paragraph, but a lazy line is in no container: it opens a block there.
        html = self.html is not None and (self.html.interrupts or not in_paragraph)
        if ((self.quote or self.comment or self.line_block or html) and not self.items) or (self.underline and in_paragraph):
            return True
        # Only the first item's own text counts: "- -" holds an empty item, but is not one.
        first_empty = self.empty_item and len(self.items) == 1
        if self.items and in_paragraph and (first_empty or self.number not in (None, 1)):
            return False  # "2. x" under a paragraph line is more of the paragraph
        return bool(self.items) or self.fence is not None


_PLAIN = _BlockStart()


def _thematic_breaks(line: str) -> Callable[[int], bool]:
    """Whether the line from a position on is a thematic break: three or more of one of
    `-`, `*`, `_` and nothing else but spaces ("- - -" is a rule, not three list items)."""
    tail = line.rstrip(" \t")
    char = tail[-1:]
    if char not in ("-", "*", "_"):
        return lambda position: False
    first = len(tail.rstrip(char + " \t"))  # where the run of `char` and spaces starts
    third_last = tail.rfind(char, 0, tail.rfind(char, 0, tail.rfind(char)))
    return lambda position: first <= position <= third_last and line[position] == char


def _block_start(line: str, base: int) -> _BlockStart:
    """What `line` opens when read in a list item whose content starts at column `base`."""
    indent = _indent_width(line)
    if indent - base > 3:
        return _PLAIN  # indented code, or more of a paragraph
    position = len(line) - len(line.lstrip(" \t"))
    if line.startswith(">", position):
        return _BlockStart(quoted=_quoted(line, position, indent))
    if line.startswith(_COMMENT, position):
        return _BlockStart(comment=True)
    html = _html_block(line, position)
    if html is not None:
        return _BlockStart(html=html)
    underline = _UNDERLINE.fullmatch(line, position) is not None
    is_rule = _thematic_breaks(line)
    column = indent
    items: list[int] = []
    number: int | None = None
    while True:
        if is_rule(position) or _HEADING.match(line, position):
            return _BlockStart(line_block=True, underline=underline, items=tuple(items), number=number)
        marker = _LIST_MARKER.match(line, position)
        if marker is None:
            break
        if not items and marker.group("number") is not None:
            number = int(marker.group("number"))
        marker_end = _advance(column, marker.group())
        rest = _SPACES.match(line, marker.end()).end()
        content = _advance(marker_end, line[marker.end() : rest])
        if rest == len(line) or content - marker_end > 4:
            # An item that starts empty, or with indented code: its content is one column in.
            items.append(marker_end + 1)
            empty = rest == len(line)
            return _BlockStart(
                underline=underline, items=tuple(items), number=number, empty_item=empty, code_item=not empty
            )
        items.append(content)
        position, column = rest, content
        if line.startswith(">", position):
            return _BlockStart(quoted=_quoted(line, position, column), items=tuple(items), number=number)
        if line.startswith(_COMMENT, position):
            return _BlockStart(comment=True, items=tuple(items), number=number)
        html = _html_block(line, position)
        if html is not None:
            return _BlockStart(html=html, items=tuple(items), number=number)
    fence = _FENCE.fullmatch(line, position)
    if fence is not None and fence.group("fence")[0] == "`" and "`" in fence.group("info"):
        fence = None  # "```a`" is inline code, not a fence
    return _BlockStart(
        underline=underline, items=tuple(items), number=number, fence=fence.group("fence") if fence else None
    )


def _table_cells(row: str) -> int:
    """How many cells a table row has: its unescaped `|` part them, one at either end aside."""
    row = row.strip(" \t")
    row = row[1:] if row.startswith("|") else row
    if not row:
        return 0  # "|" alone: no cell
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return len(_CELL_BORDER.findall(row)) + 1


def _quoted(line: str, marker: int, column: int) -> str:
    """The text after the quote marker `>` at index `marker` (column `column`), one column
    of space after it taken as part of the marker. Tabs become the spaces they stand for
    where they are, so that blocks inside the quote keep their indentation."""
    start = column + 1
    text = (" " * start + line[marker + 1 :]).expandtabs(4)[start:]
    return text[1:] if text.startswith(" ") else text


def _fence_ends(line: str, fence: str, content_column: int) -> str | None:
    """Whether `line` closes the open `fence` ("closes"), ends the list item the fence is
    in, and so the fence, without being part of it ("leaves"), or neither (None)."""
    if _is_blank(line):
        return None
    indent = _indent_width(line)
    if indent < content_column:
        return "leaves"
    closing = _FENCE_CLOSE.fullmatch(line.lstrip(" \t"))
    if closing is None or indent - content_column > 3:
        return None
    run = closing.group("fence")
    return "closes" if run[0] == fence[0] and len(run) >= len(fence) else None


def _comment_ends(line: str, content_column: int) -> str | None:
    """Like `_fence_ends`, for an open HTML comment block: it closes on a line with `-->`."""
    if _is_blank(line):
        return None
    if _indent_width(line) < content_column:
        return "leaves"
    return "closes" if "-->" in line else None


def _comment_closes_at_once(line: str) -> bool:
    """Does the line that opens an HTML comment block close it too ("<!-- note -->")?"""
    return "-->" in line[line.index(_COMMENT) + 2 :]


def _html_ends(line: str, block: _HtmlBlock, content_column: int) -> str | None:
    """Like `_fence_ends`, for an open HTML block."""
    if _is_blank(line):
        return "closes" if block.end is None else None
    if _indent_width(line) < content_column:
        return "leaves"
    return "closes" if block.end is not None and block.end.search(line) else None


def _code_ends(line: str, opener: str | _HtmlBlock, content_column: int) -> str | None:
    """`_fence_ends`, `_comment_ends` or `_html_ends`, for the block `opener` (a fence,
    `_COMMENT` or an HTML block) opened."""
    if isinstance(opener, _HtmlBlock):
        return _html_ends(line, opener, content_column)
    if opener == _COMMENT:
        return _comment_ends(line, content_column)
    return _fence_ends(line, opener, content_column)


# Quotes inside quotes are followed this deep; a `>` deeper still is taken for quoted text.
_MAX_QUOTE_DEPTH = 32


class _Blocks:
    """The containers open at a line: list items, and a `>` quote in the innermost of them.

    A quote holds blocks of its own (`_Quote`), followed so far as to know whether it
    ends with a paragraph: a line under it then goes on in the quote ("lazily") unless
    it starts a block, as GitHub renders it.
    """

    def __init__(self, quote_depth: int) -> None:
        # The content columns of the open list items, innermost last (so increasing).
        self._items: list[int] = []
        # The open paragraph: the content column of the item that holds it.
        self._paragraph_column = 0
        self._quote: _Quote | None = None
        self._quote_depth = quote_depth  # how many quotes hold these blocks

    def _within(self, line: str) -> int:
        """How many of the open list items `line` is indented enough to stay in."""
        return bisect.bisect_right(self._items, _indent_width(line))

    def _base(self, depth: int) -> int:
        return self._items[depth - 1] if depth else 0

    def _continues_paragraph(self, line: str) -> bool:
        if _is_blank(line):
            return False
        depth = self._within(line)
        start = _block_start(line, self._base(depth))
        in_paragraph = _indent_width(line) >= self._paragraph_column
        return not start.interrupts(in_paragraph=in_paragraph)

    def _underlines_paragraph(self, line: str) -> bool:
        if _indent_width(line) < self._paragraph_column:
            return False
        return _block_start(line, self._base(self._within(line))).underline

    def _open_quote(self, start: _BlockStart) -> None:
        """Opens the quote `start` begins, in the items it opens."""
        self._items.extend(start.items)
        self._quote = _Quote(self._quote_depth + 1)
        self._quote.read(start.quoted)

    def _goes_on_in_quote(self, line: str) -> bool:
        """Is the non-blank `line` in the open quote: a `>` line where the items around
        the quote hold it (read on inside the quote), or a lazy line? If not, the quote ends."""
        depth = self._within(line)
        start = _block_start(line, self._base(depth))
        if start.quote and not start.items and depth == len(self._items):
            self._quote.read(start.quoted)
            return True
        # A lazy line: no container holds it, so any block start ends the quote ("2." too).
        if self._quote.ends_in_paragraph() and not start.interrupts(in_paragraph=False):
            self._quote.innermost()._paragraph_line = line  # a table's header row, maybe
            return True
        self._quote = None
        return False


class _Quote(_Blocks):
    """The blocks inside a `>` quote, read a line at a time with the `>` taken off.

    Nothing in a quote is read, so only the block structure is followed: whether the
    quote ends with a paragraph, which a line under it may go on.
    """

    def __init__(self, quote_depth: int) -> None:
        super().__init__(quote_depth)
        self._paragraph_open = self._empty_item_open = self._table_open = False
        self._paragraph_line = ""  # the open paragraph's last line: a table's header row, if one follows
        self._no_table = False  # a delimiter row under the open paragraph did not fit: no table in it
        # An open fence, HTML comment block (`_COMMENT`) or other HTML block, and its item's content column.
        self._code: tuple[str | _HtmlBlock, int] | None = None

    def innermost(self) -> _Quote:
        quote = self
        while quote._quote is not None:
            quote = quote._quote
        return quote

    def ends_in_paragraph(self) -> bool:
        return self.innermost()._paragraph_open

    def read(self, line: str) -> None:
        if self._code is not None:
            end = _code_ends(line, *self._code)
            if end != "leaves":
                if end == "closes":
                    self._code = None
                return
            self._code = None  # the line is read on, outside the list item
        if _is_blank(line):
            if self._empty_item_open:
                self._items.pop()  # an item that starts empty ends at a blank line
            self._empty_item_open = self._paragraph_open = self._table_open = False
            self._quote = None
            return
        self._empty_item_open = False
        if self._quote is not None and self._goes_on_in_quote(line):
            return
        if self._table_open and self._continues_table(line):
            return
        self._table_open = False
        if self._paragraph_open and self._continues_paragraph(line):
            if self._delimits_table(line):
                # GitHub's tables: the paragraph's last line was the header; a table takes no lazy line.
                self._paragraph_open, self._table_open = False, True
            self._paragraph_line = line
            return
        if self._paragraph_open and self._underlines_paragraph(line):
            self._paragraph_open = False
            return
        self._paragraph_open = False
        depth = self._within(line)
        del self._items[depth:]
        base = self._base(depth)
        start = _block_start(line, base)
        if start.comment:
            self._items.extend(start.items)
            if not _comment_closes_at_once(line):
                self._code = (_COMMENT, self._base(len(self._items)))
        elif start.html is not None:
            self._items.extend(start.items)
            block_start = len(line) - len(line.lstrip(" \t"))  # where its end may already be
            if start.html.end is None or not start.html.end.search(line, block_start + 1):
                self._code = (start.html, self._base(len(self._items)))
        elif start.quote and self._quote_depth < _MAX_QUOTE_DEPTH:
            self._open_quote(start)
        elif start.line_block or start.empty_item or start.code_item:
            self._items.extend(start.items)
            self._empty_item_open = start.empty_item
        elif start.fence is not None:
            self._items.extend(start.items)
            self._code = (start.fence, self._base(len(self._items)))
        elif start.items or _indent_width(line) - base < 4:  # else indented code
            self._items.extend(start.items)  # a paragraph (or a quote too deep to follow)
            self._paragraph_column = self._base(len(self._items))
            self._paragraph_open, self._paragraph_line, self._no_table = True, line, False

    def _delimits_table(self, line: str) -> bool:
        """Is `line`, which goes on in the open paragraph, a table's delimiter row under its last line?"""
        indent = _indent_width(line) - self._paragraph_column
        if self._no_table or not 0 <= indent < 4 or not _TABLE_DELIMITER.fullmatch(line):
            return False
        if _table_cells(line) == _table_cells(self._paragraph_line):
            return True
        self._no_table = True  # as GitHub reads it: a paragraph tried as a table once stays one
        return False

    def _continues_table(self, line: str) -> bool:
        """Is `line` a row of the open table: in its container, starting no block of its own?"""
        if not 0 <= _indent_width(line) - self._paragraph_column < 4 or not line.strip(" \t|"):
            return False  # outside its container, indented code, or no cell at all
        return not _block_start(line, self._base(self._within(line))).interrupts(in_paragraph=False)


class _Scanner(_Blocks):
    """Walks the lines once, keeping for each line what a reader sees.

    For every source line two texts are kept: `visible`, where hidden inline parts
    are `ELISION` (commands are looked for here), and `source`, where HTML comments
    are dropped but code spans are kept as written (reasons are taken from here).
    Blocks that are hidden whole leave an empty line, so paragraphs stay apart.

    List items are followed as GitHub reads them, since a fence inside one is code
    until it closes or the item ends (a line indented less than the item's content).
    """

    def __init__(self, body: str) -> None:
        super().__init__(quote_depth=0)
        self.lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.visible: list[list[str]] = [[] for _ in self.lines]
        self.source: list[list[str]] = [[] for _ in self.lines]
        # (paragraph end line, backtick run length or `_COMMENT`): openers known not to close.
        self._unclosed: set[tuple[int, int | str]] = set()
        # The first line after the open paragraph (a code span cannot run past it).
        self._paragraph_end = 0

    def _find_paragraph_end(self, index: int) -> int:
        """The first line after line `index` that the paragraph holding it does not reach."""
        end = index + 1
        while end < len(self.lines) and self._continues_paragraph(self.lines[end]):
            end += 1
        return end

    def run(self) -> _Scanner:
        index = 0
        paragraph_open = empty_item_open = False
        while index < len(self.lines):
            line = self.lines[index]
            if _is_blank(line):
                if empty_item_open:
                    self._items.pop()  # an item that starts empty ends at a blank line
                empty_item_open = paragraph_open = False
                self._quote = None
                index += 1
                continue
            empty_item_open = False
            if self._quote is not None and self._goes_on_in_quote(line):
                index += 1  # quoted: nothing to read
                continue
            if paragraph_open and self._continues_paragraph(line):
                index = self._inline(index)  # in the item, or a lazy line: the items stay open
                paragraph_open = any(part.strip() for part in self.visible[index - 1])
                continue
            if paragraph_open and self._underlines_paragraph(line):
                paragraph_open = False  # a heading's underline: nothing to read on it
                index += 1
                continue
            depth = self._within(line)
            del self._items[depth:]  # a line indented less ends the items it is not in
            base = self._base(depth)
            start = _block_start(line, base)
            if start.comment:
                self._items.extend(start.items)
                end = index + 1
                if not _comment_closes_at_once(line):
                    end = self._code_end(index + 1, _COMMENT)
                self._hide(index, 0, end - 1, None, keep_source=False)
                paragraph_open = False
                index = end
            elif start.quote:
                self._open_quote(start)  # nothing to read on the line
                paragraph_open = False
                index += 1
            elif start.line_block or start.empty_item or start.code_item:
                self._items.extend(start.items)  # nothing to read on this line, but the items are open
                empty_item_open = start.empty_item
                paragraph_open = False
                index += 1
            elif start.fence is not None:
                self._items.extend(start.items)
                index = self._code_end(index + 1, start.fence)
                paragraph_open = False
            elif not start.items and _indent_width(line) - base >= 4:
                index += 1  # an indented code block (it cannot interrupt a paragraph)
                paragraph_open = False
            else:
                self._items.extend(start.items)
                self._paragraph_column = self._base(len(self._items))
                self._paragraph_end = self._find_paragraph_end(index)
                index = self._inline(index)
                paragraph_open = any(part.strip() for part in self.visible[index - 1])
        return self

    def _code_end(self, index: int, opener: str) -> int:
        """The first line from line `index` on that is not in the fence or HTML comment
        block `opener` opened in the innermost open item (past the line that closes it)."""
        content_column = self._base(len(self._items))
        while index < len(self.lines):
            end = _code_ends(self.lines[index], opener, content_column)
            if end == "leaves":
                break  # the line is read again, outside the list item
            index += 1
            if end == "closes":
                break
        return index

    def _inline(self, index: int) -> int:
        """Reads one paragraph line from its start; returns the next line to look at.

        A code span or comment may run on over several lines of its paragraph; the line
        it ends on is then read on from there. An opener that does not close within the
        paragraph is plain text, as GitHub shows it.
        """
        column = 0
        while True:
            line = self.lines[index]
            match = _INLINE.search(line, column)
            if match is None:
                self._keep(index, line[column:])
                return index + 1
            self._keep(index, line[column : match.start()])
            if match.group() == "<!--":
                found = self._comment_close(index, match.start() + 2)
                if found is None:
                    self._keep(index, "<!--")
                    column = match.end()
                    continue
                end_index, end_column = found[0], found[1] + len("-->")
                self._hide(index, match.start(), end_index, end_column, keep_source=False)
            else:
                run = match.group()
                found = self._closing_run(index, match.end(), len(run))
                if found is None:
                    self._keep(index, run)  # an unmatched run of backticks is literal
                    column = match.end()
                    continue
                end_index, end_column = found[0], found[1] + len(run)
                self._hide(index, match.start(), end_index, end_column, keep_source=True)
            index, column = end_index, end_column

    def _end_of_paragraph(self, index: int) -> int:
        if index >= self._paragraph_end:  # a lazy line past the end first found
            self._paragraph_end = self._find_paragraph_end(index)
        return self._paragraph_end

    def _comment_close(self, index: int, column: int) -> tuple[int, int] | None:
        """Where an HTML comment opened in a paragraph closes (its `-->`), within the paragraph."""
        end = self._end_of_paragraph(index)
        if (end, _COMMENT) in self._unclosed:
            return None
        for line_index in range(index, end):
            found = self.lines[line_index].find("-->", column if line_index == index else 0)
            if found != -1:
                return line_index, found
        self._unclosed.add((end, _COMMENT))  # later openers in this paragraph cannot close either
        return None

    def _closing_run(self, index: int, column: int, length: int) -> tuple[int, int] | None:
        """Where a code span opened by `length` backticks closes, within its paragraph."""
        end = self._end_of_paragraph(index)
        if (end, length) in self._unclosed:
            return None
        for line_index in range(index, end):
            start = column if line_index == index else 0
            for run in _BACKTICKS.finditer(self.lines[line_index], start):
                if len(run.group()) == length:
                    return line_index, run.start()
        # Later openers of the same length in this paragraph cannot close either.
        self._unclosed.add((end, length))
        return None

    def _keep(self, index: int, text: str) -> None:
        if text:
            self.visible[index].append(text)
            self.source[index].append(text)

    def _hide(self, first: int, start: int, last: int, stop: int | None, *, keep_source: bool) -> None:
        """Hides the text from (first, start) to (last, stop), `stop` None meaning the line end."""
        for index in range(first, last + 1):
            line = self.lines[index]
            part = line[start if index == first else 0 : stop if index == last else None]
            if part.strip():
                self.visible[index].append(ELISION)
            if keep_source:
                # A code span's line breaks are spaces, as when it is rendered.
                self.source[index].append(part if index == last else part + " ")

    def visible_lines(self) -> list[str]:
        return ["".join(parts) for parts in self.visible]

    def source_lines(self) -> list[str]:
        return ["".join(parts) for parts in self.source]


def strip_non_command_text(body: str) -> str:
    """The comment with everything that cannot hold a command taken out.

    Line endings become LF and the text keeps one line per source line: code
    blocks (a fence may open a list item), quotes (with the lines that go on in them),
    headings, rules and blank lines are empty, and hidden inline text (code spans,
    HTML comments) leaves `ELISION` in its place, so that text after it does not look
    like the start of a line. A fence or HTML comment block never closed hides
    everything after it in its list item (in the comment, if in none).
    """
    return "\n".join(_Scanner(body or "").run().visible_lines())


def _clean_reason(text: str) -> str:
    # NUL as GitHub shows it (CommonMark's U+FFFD), as it is stored.
    reason = " ".join(storable(text).split())
    if len(reason) > MAX_REASON_LENGTH:
        reason = reason[: MAX_REASON_LENGTH - 1].rstrip() + "…"
    return reason


def _command(kind: CommandKind, rest: str) -> Command:
    if kind in _NO_REASON:
        return Command(kind)
    words = rest.split()
    if kind in _CANCELLABLE and len(words) == 1 and words[0].lower() == "cancel":
        return Command(CommandKind.RETRACT)
    if kind is CommandKind.PROMOTE:
        force = any(word.lower() == _FORCE_FLAG for word in words)
        reason = " ".join(word for word in words if word.lower() != _FORCE_FLAG)
        return Command(kind, reason=_clean_reason(reason), force=force)
    return Command(kind, reason=_clean_reason(rest))


def parse_commands(body: str | None) -> tuple[Command, ...]:
    """The commands in a comment body, in the order they appear.

    Command words are matched in any case and must be followed by whitespace or the
    end of the line (`/approved` is not `/approve`); unknown `/words` are ignored.
    The rest of the line is the reason, whitespace collapsed, at most
    `MAX_REASON_LENGTH` characters; inline code in it is kept as written.
    """
    if not body:
        return ()
    scanner = _Scanner(body).run()
    commands: list[Command] = []
    for visible, source in zip(scanner.visible_lines(), scanner.source_lines()):
        match = _COMMAND.match(visible)
        if match is None:
            continue
        try:
            kind = CommandKind(match.group("word").lower())
        except ValueError:
            continue
        # The matched prefix is plain text, so it has the same length in both forms.
        commands.append(_command(kind, source[match.end() :]))
    return tuple(commands)
