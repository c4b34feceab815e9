"""Reading `/approve`-style commands out of a pull request comment (DESIGN section 2).

A command is a line that starts (after at most three spaces) with `/` and a known
command word. Before looking, everything a reader does not see as plain text is set
aside, so that quoting, documenting or hiding a command never votes: fenced and
indented code blocks, inline code, `>` quotes and HTML comments. Blocks are found as
GitHub's CommonMark finds them, list items included: "- ```" opens a fence in an item.
"""

from __future__ import annotations

import bisect
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

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

Your latest vote is the one that counts. Commands inside code, `>` quotes or HTML comments are ignored.
Counted commands show in the status comment and check run; a 😕 reaction means a command was not counted, and the status comment says why.
"""


# --- Finding the text a reader sees -------------------------------------------------

# A line opens list items with markers ("- ", "1. ", "* 1) "), and may open a fence right
# after them ("- ```"): what the fence holds is code, inside the item, however it is indented.
_LIST_MARKER = re.compile(r"(?:[-+*]|(?P<number>\d{1,9})[.)])(?=[ \t]|$)")
_HEADING = re.compile(r"#{1,6}(?:[ \t]|$)")
_UNDERLINE = re.compile(r"(?:=+|-+)[ \t]*")  # under a paragraph line, makes it a heading
_SPACES = re.compile(r"[ \t]*")
_FENCE = re.compile(r"(?P<fence>`{3,}|~{3,})(?P<info>.*)")
_FENCE_CLOSE = re.compile(r"(?P<fence>`{3,}|~{3,})[ \t]*")
_INLINE = re.compile(r"`+|<!--")
_BACKTICKS = re.compile(r"`+")
_COMMAND = re.compile(r"^ {0,3}/(?P<word>[A-Za-z]+)(?=\s|$)")


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

    quote: bool = False
    comment: bool = False  # "<!--": an HTML block, up to the end of the line that closes it
    line_block: bool = False  # a thematic break ("---") or a heading ("# Title"), maybe in the items it opens
    underline: bool = False  # "===" or "---": under a paragraph line, it ends the paragraph
    items: tuple[int, ...] = ()  # content columns of the list items it opens ("- 1. x": 2, 5)
    number: int | None = None  # the first item's number, when it is numbered
    empty_item: bool = False  # markers and nothing after them
    code_item: bool = False  # markers and then indented code ("-     x")
    fence: str | None = None  # the fence it opens, after those markers

    def interrupts(self, *, in_paragraph: bool) -> bool:
        """Does this line end an open paragraph? `in_paragraph`: the line is within the
        list item that holds the paragraph (else it can only close it)."""
        if self.quote or self.comment or (self.line_block and not self.items) or (self.underline and in_paragraph):
            return True
        if self.items and in_paragraph and (self.empty_item or self.number not in (None, 1)):
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
        return _BlockStart(quote=True)
    if line.startswith("<!--", position):
        return _BlockStart(comment=True)
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
    fence = _FENCE.fullmatch(line, position)
    if fence is not None and fence.group("fence")[0] == "`" and "`" in fence.group("info"):
        fence = None  # "```a`" is inline code, not a fence
    return _BlockStart(
        underline=underline, items=tuple(items), number=number, fence=fence.group("fence") if fence else None
    )


_QUOTE_MARKS = re.compile(r"(?:[ \t]*>[ \t]?)+")
_OUTSIDE = 1 << 30  # a column no line reaches


def _quotes_text(line: str) -> bool:
    """Does the quote line hold paragraph text, which the next line may go on lazily?"""
    content = line[_QUOTE_MARKS.match(line).end() :]
    if _is_blank(content):
        return False
    start = _block_start(content, 0)
    return start.fence is None and not (start.comment or start.line_block or start.empty_item or start.code_item)


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


class _Scanner:
    """Walks the lines once, keeping for each line what a reader sees.

    For every source line two texts are kept: `visible`, where hidden inline parts
    are `ELISION` (commands are looked for here), and `source`, where HTML comments
    are dropped but code spans are kept as written (reasons are taken from here).
    Blocks that are hidden whole leave an empty line, so paragraphs stay apart.

    List items are followed as GitHub reads them, since a fence inside one is code
    until it closes or the item ends (a line indented less than the item's content).
    """

    def __init__(self, body: str) -> None:
        self.lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.visible: list[list[str]] = [[] for _ in self.lines]
        self.source: list[list[str]] = [[] for _ in self.lines]
        # (paragraph end line, run length) pairs known to have no closing run.
        self._unclosed_runs: set[tuple[int, int]] = set()
        # The content columns of the open list items, innermost last (so increasing).
        self._items: list[int] = []
        # The open paragraph: the content column of the item that holds it, and the
        # first line after it (a code span cannot run past it).
        self._paragraph_column = 0
        self._paragraph_end = 0

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

    def _find_paragraph_end(self, index: int) -> int:
        """The first line after line `index` that the paragraph holding it does not reach."""
        end = index + 1
        while end < len(self.lines) and self._continues_paragraph(self.lines[end]):
            end += 1
        return end

    def run(self) -> _Scanner:
        index = 0
        paragraph_open = empty_item_open = after_quoted_text = False
        while index < len(self.lines):
            line = self.lines[index]
            if _is_blank(line):
                if empty_item_open:
                    self._items.pop()  # an item that starts empty ends at a blank line
                empty_item_open = paragraph_open = after_quoted_text = False
                index += 1
                continue
            quoted_text, after_quoted_text = after_quoted_text, False
            empty_item_open = False
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
                found = self._find(index, len(line) - len(line.lstrip(" \t")) + 2, "-->")
                last = len(self.lines) - 1 if found is None else found[0]
                self._hide(index, 0, last, None, keep_source=False)
                paragraph_open = False
                index = last + 1
            elif start.quote or start.line_block or start.empty_item or start.code_item:
                after_quoted_text = start.quote and _quotes_text(line)
                self._items.extend(start.items)  # nothing to read on this line, but the items are open
                empty_item_open = start.empty_item
                paragraph_open = False
                index += 1
            elif start.fence is not None:
                self._items.extend(start.items)
                content_column = self._base(len(self._items))
                index += 1
                while index < len(self.lines):
                    end = _fence_ends(self.lines[index], start.fence, content_column)
                    if end == "leaves":
                        break  # the line is read again, outside the list item
                    index += 1
                    if end == "closes":
                        break
                paragraph_open = False
            elif not start.items and _indent_width(line) - base >= 4:
                index += 1  # an indented code block (it cannot interrupt a paragraph)
                paragraph_open = False
            else:
                self._items.extend(start.items)
                # Text right after quoted text goes on in the quote for GitHub (it still counts
                # here): no line after it is within the paragraph, so a list of any number may start.
                self._paragraph_column = _OUTSIDE if quoted_text else self._base(len(self._items))
                self._paragraph_end = self._find_paragraph_end(index)
                index = self._inline(index)
                paragraph_open = any(part.strip() for part in self.visible[index - 1])
        return self

    def _inline(self, index: int) -> int:
        """Reads one paragraph line from its start; returns the next line to look at.

        A code span or comment may run on over several lines; the line it ends on is
        then read on from there.
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
                found = self._find(index, match.start() + 2, "-->")
                if found is None:
                    self._hide(index, match.start(), len(self.lines) - 1, None, keep_source=False)
                    return len(self.lines)
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

    def _find(self, index: int, column: int, needle: str) -> tuple[int, int] | None:
        for line_index in range(index, len(self.lines)):
            found = self.lines[line_index].find(needle, column if line_index == index else 0)
            if found != -1:
                return line_index, found
        return None

    def _closing_run(self, index: int, column: int, length: int) -> tuple[int, int] | None:
        """Where a code span opened by `length` backticks closes, within its paragraph."""
        if index >= self._paragraph_end:  # an HTML comment ran on past the paragraph
            self._paragraph_end = self._find_paragraph_end(index)
        end = self._paragraph_end
        if (end, length) in self._unclosed_runs:
            return None
        for line_index in range(index, end):
            start = column if line_index == index else 0
            for run in _BACKTICKS.finditer(self.lines[line_index], start):
                if len(run.group()) == length:
                    return line_index, run.start()
        # Later openers of the same length in this paragraph cannot close either.
        self._unclosed_runs.add((end, length))
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
    blocks (a fence may open a list item), quote lines, headings, rules and blank
    lines are empty, and hidden inline text (code spans, HTML comments) leaves
    `ELISION` in its place, so that text after it does not look like the start of a
    line. An unclosed HTML comment or fence hides everything after it.
    """
    return "\n".join(_Scanner(body or "").run().visible_lines())


def _clean_reason(text: str) -> str:
    reason = " ".join(text.split())
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
