"""The command parser against GitHub's own Markdown renderer (cmark-gfm, used only here):
a command counts exactly when GitHub shows its line as text at the start of a line,
outside any quote, code or HTML comment.

Each generated command line carries its own line number as its reason ("/approve r3"),
so that what the renderer shows can be traced back to the line it came from.

markdown-it-py is not the reference here: where a line is indented four or more columns
under a quote it parts from CommonMark. It goes on with the quote at such a `>`
(">\\n    > x": GitHub shows indented code after the quote), and it ends nested quotes
at such a line that GitHub takes as more of their text (">> a\\n      ~~~\\n/hold": all
quoted for GitHub, a code block and a command for markdown-it-py).
"""

import re

import cmarkgfm
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pinkflow_bot.governance.commands import parse_commands

WORDS = ["approve", "reject", "hold", "abstain"]
# What the parser takes for a command line (at most three spaces, then the command).
COMMAND_LINE = re.compile(r" {0,3}/(?:" + "|".join(WORDS) + r") r\d+")
SHOWN_COMMAND = re.compile(r"(?:<[^>]+>)*/(" + "|".join(WORDS) + r") r(\d+)\b")
# Code blocks, code spans and raw HTML (which GitHub leaves out) are not text a reader sees.
HIDDEN = re.compile(r"<pre>.*?</pre>|<code>.*?</code>|<!--.*?-->", re.DOTALL)
INNERMOST_QUOTE = re.compile(r"<blockquote>(?:(?!<blockquote>).)*?</blockquote>", re.DOTALL)


def shown_commands(body: str) -> list[tuple[str, int]]:
    """(word, line) of each command GitHub shows at the start of a line outside quotes,
    from a source line that is a command line for the parser too ("- /approve" is not)."""
    html = HIDDEN.sub("…", cmarkgfm.github_flavored_markdown_to_html(body))
    while (unquoted := INNERMOST_QUOTE.sub("", html)) != html:
        html = unquoted
    lines = body.split("\n")
    found = []
    for shown in html.split("\n"):
        match = SHOWN_COMMAND.match(shown)
        if match and COMMAND_LINE.fullmatch(lines[int(match.group(2))].rstrip()):
            found.append((match.group(1), int(match.group(2))))
    return found


def counted_commands(body: str) -> list[tuple[str, int]]:
    return [(command.kind.value, int(command.reason[1:])) for command in parse_commands(body)]


COMMAND = "CMD"  # stands for a command line, numbered when the comment is put together
# Containers a line may open or stay in, up to three on a line.
PREFIXES = ["", " ", "  ", "   ", "    ", ">", "> ", ">  ", "- ", "* ", "1. ", "2) ", "\t"]
# What follows them: text, commands, and blocks that end (or do not end) a quote.
CONTENTS = [
    COMMAND, COMMAND, COMMAND, "", "", "text", "more text", "```", "~~~", "````", "--- ", "===", "# title",
    "- item", "2. item", "-", "<!--", "-->", "<!-- note -->", "`code", "code`", "    indented", "> quoted",
    "\t> tab",
]
line_parts = st.tuples(st.lists(st.sampled_from(PREFIXES), max_size=3), st.sampled_from(CONTENTS))


def put_together(parts: list[tuple[list[str], str]]) -> str:
    lines = []
    for number, (prefixes, content) in enumerate(parts):
        text = f"/{WORDS[number % len(WORDS)]} r{number}" if content == COMMAND else content
        lines.append("".join(prefixes) + text)
    return "\n".join(lines)


def line(prefixes: str, content: str) -> tuple[list[str], str]:
    return ([prefixes] if prefixes else [], content)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line_parts, min_size=1, max_size=12))
# A line right under quoted text goes on in the quote, unless it starts a block.
@example([line("> ", "text"), line("", COMMAND)])
@example([line("> ", "text"), line("", "more text"), line("", COMMAND)])
@example([line("> ", "text"), line("", "more text"), line("> ", "text"), line("", COMMAND)])
@example([line("> > ", "text"), line("", COMMAND)])
@example([line("> > ", "text"), line("> ", COMMAND), line("", COMMAND)])
@example([line("- > ", "text"), line("", COMMAND)])
@example([line("- > ", "text"), line("  ", COMMAND)])
@example([line("> - ", "text"), line("", COMMAND)])
@example([line("> ", "text"), line("", "    indented"), line("", COMMAND)])
@example([line("> ", "text"), line("", "    > quoted"), line("", COMMAND)])
@example([line("> ", "text"), line("", "==="), line("", COMMAND)])
@example([line("> ", "text"), line("", "2. item"), line("", COMMAND)])
@example([line("> ", "text"), line("", "-"), line("", COMMAND)])
@example([line("> ", "text"), line("", "--- "), line("", COMMAND)])
@example([line("> ", "text"), line("", "```"), line("", COMMAND), line("", "```"), line("", COMMAND)])
@example([line("> ", "text"), line("", "<!-- note -->"), line("", COMMAND)])
# Nothing goes on in a quote that does not end with a paragraph.
@example([line("> ", "text"), line("", ""), line("", COMMAND)])
@example([line("> ", "text"), line(">", ""), line("", COMMAND)])
@example([line("> ", "```"), line("", COMMAND)])
@example([line("> ", "```"), line("> ", "text"), line("", COMMAND)])
@example([line(">     ", "indented"), line("", COMMAND)])
@example([line(">", ""), line("    ", "> quoted"), line("", COMMAND)])
@example([line("> ", "text"), line("> ", "==="), line("", COMMAND)])
@example([line("> ", "# title"), line("", COMMAND)])
@example([line("> ", "<!--"), line("", COMMAND)])
@example([line("> * ", "<!-- note -->"), line("", COMMAND)])
@example([line("> - ", "```"), line(">   ", "text"), line("", COMMAND)])
@example([line("> > ", "text"), line(">", ""), line("", COMMAND)])
@example([line("> ", "text"), line("> - ", "* "), line("", COMMAND)])
@example([line("> > ", "\t> tab"), line("", COMMAND)])
# An HTML comment that does not close within its paragraph is text.
@example([line("", "text <!--"), line("", ""), line("", COMMAND), line("", "-->")])
@example([line("- ", "<!--"), line("", COMMAND)])
def test_a_command_counts_exactly_when_github_shows_it(parts):
    body = put_together(parts)
    assert counted_commands(body) == shown_commands(body), body
