"""Reading `/approve`-style commands out of a pull request comment (DESIGN section 2).

A command is a line that starts (after at most three spaces) with `/` and a known
command word. Before looking, everything a reader does not see as plain text is set
aside, so that quoting, documenting or hiding a command never votes: fenced and
indented code blocks, inline code, `>` quotes and HTML comments.
"""

from __future__ import annotations

import enum
import re
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

_FENCE_OPEN = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_FENCE_CLOSE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})[ \t]*$")
_QUOTE = re.compile(r"^ {0,3}>")
_INLINE = re.compile(r"`+|<!--")
_BACKTICKS = re.compile(r"`+")
_COMMAND = re.compile(r"^ {0,3}/(?P<word>[A-Za-z]+)(?=\s|$)")


def _is_blank(line: str) -> bool:
    return not line.strip(" \t")


def _fence_opening(line: str) -> str | None:
    """The fence (e.g. "```" or "~~~~") a line opens, if it opens one."""
    match = _FENCE_OPEN.match(line)
    if match is None:
        return None
    fence = match.group("fence")
    if fence[0] == "`" and "`" in match.group("info"):
        return None  # "```a`" is inline code, not a fence
    return fence


def _closes_fence(line: str, fence: str) -> bool:
    match = _FENCE_CLOSE.match(line)
    if match is None:
        return False
    closing = match.group("fence")
    return closing[0] == fence[0] and len(closing) >= len(fence)


def _indent_width(line: str) -> int:
    width = 0
    for char in line:
        if char == " ":
            width += 1
        elif char == "\t":
            width += 4 - width % 4
        else:
            break
    return width


def _ends_paragraph(line: str) -> bool:
    """Lines that a code span cannot run across: blank lines and new blocks."""
    return _is_blank(line) or _fence_opening(line) is not None or _QUOTE.match(line) is not None


class _Scanner:
    """Walks the lines once, keeping for each line what a reader sees.

    For every source line two texts are kept: `visible`, where hidden inline parts
    are `ELISION` (commands are looked for here), and `source`, where HTML comments
    are dropped but code spans are kept as written (reasons are taken from here).
    Blocks that are hidden whole leave an empty line, so paragraphs stay apart.
    """

    def __init__(self, body: str) -> None:
        self.lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.visible: list[list[str]] = [[] for _ in self.lines]
        self.source: list[list[str]] = [[] for _ in self.lines]
        # (paragraph end line, run length) pairs known to have no closing run.
        self._unclosed_runs: set[tuple[int, int]] = set()
        # For each line, the first line at or after it that a code span cannot cross.
        self._paragraph_end = [len(self.lines)] * (len(self.lines) + 1)
        for index in range(len(self.lines) - 1, -1, -1):
            ends = _ends_paragraph(self.lines[index])
            self._paragraph_end[index] = index if ends else self._paragraph_end[index + 1]

    def run(self) -> _Scanner:
        index = 0
        paragraph_open = False
        while index < len(self.lines):
            line = self.lines[index]
            fence = _fence_opening(line)
            if _is_blank(line):
                paragraph_open = False
                index += 1
            elif fence is not None:
                index += 1
                while index < len(self.lines):
                    closed = _closes_fence(self.lines[index], fence)
                    index += 1
                    if closed:
                        break
                paragraph_open = False
            elif _QUOTE.match(line):
                paragraph_open = False
                index += 1
            elif not paragraph_open and _indent_width(line) >= 4:
                index += 1  # an indented code block cannot interrupt a paragraph
            else:
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
        end = self._paragraph_end[index + 1]
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
    blocks, quote lines and blank lines are empty, and hidden inline text (code
    spans, HTML comments) leaves `ELISION` in its place, so that text after it does
    not look like the start of a line. An unclosed HTML comment or fence hides
    everything after it.
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
