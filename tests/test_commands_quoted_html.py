"""Quoted HTML and tables and the lines under them, against GitHub's own renderer
(cmark-gfm): a quote whose last block is HTML ("> </details>") or a table takes no lazy
line, so a command right under it is shown, and counts; a lone tag under quoted text
("> <img ...>") is more of its paragraph."""

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pinkflow_bot.governance.commands import parse_commands
from tests.governance.test_commands_commonmark import (
    CONTENTS,
    PREFIXES,
    counted_commands,
    line,
    put_together,
    shown_commands,
)

# HTML as people paste it in comments: collapsed logs, screenshots, preformatted text.
HTML = [
    "<details>", "</details>", "<summary>Log</summary>", "<div>", "<DIV class=a>", "</div>", "<pre>", "</pre>",
    "<script>", "<?php", "?>", "<!DOCTYPE html>", "<![CDATA[", "]]>", '<img src="x.png" alt="screenshot">',
    "<a href='x'>", "</a>", "<br/>", "<span> text", "<divx>", "<!x",
]
TABLES = ["a|b", "| a | b |", "-|-", "|---|:-:|", ":-", "|-", "a|", "a \\| b", "`a|b`", "a|b|c", "x"]


@pytest.mark.parametrize(
    "body, counted",
    [
        ("> <details><summary>Log</summary>\n> failed\n> </details>\n/approve", ["approve"]),
        ("> text\n> </details>\n/approve", ["approve"]),
        ("> <pre>\n> log\n/approve", ["approve"]),
        ("> text\n<pre>log</pre>\n/approve", ["approve"]),
        ("> - <div>\n/approve", ["approve"]),
        ('> <img src="x.png">\n/approve', ["approve"]),
        # Still in the quote: a lone tag cannot end quoted text, and the line under it goes on in it.
        ('> looks good\n> <img src="x.png">\n/approve', []),
        ("> <span> text\n/approve", []),
        ("> <div>\n>\n> text\n/approve", []),
        # A quoted table (a benchmark, a checklist) ends the quote where it ends.
        ("> | run | ms |\n> |-----|---:|\n> | old | 87 |\n/approve", ["approve"]),
        ("> I measured:\n> run | ms\n> --- | ---\n/approve", ["approve"]),
        ("> a | b\n> - | -\n/approve", []),  # a list item, not a delimiter row
        ("> a | b\n> :- | -: | -\n> x\n/approve", []),  # three cells under two: text
    ],
)
def test_a_command_under_quoted_html_counts_as_github_shows_it(body, counted):
    assert [command.kind.value for command in parse_commands(body)] == counted
    # The same for GitHub, the command line numbered as the renderer's test wants it.
    numbered = "\n".join(f"{text} r{number}" if text == "/approve" else text for number, text in enumerate(body.split("\n")))
    assert [word for word, _line in shown_commands(numbered)] == counted


# HTML and table rows only behind a `>`: what GitHub shows of HTML outside quotes is left to
# its sanitizer, and a table outside quotes is read as text.
quoted_html = st.tuples(
    st.lists(st.sampled_from(PREFIXES), max_size=2).map(lambda prefixes: [*prefixes, "> "]), st.sampled_from(HTML)
)
table_rows = st.tuples(
    st.lists(st.sampled_from(PREFIXES), max_size=2).map(lambda prefixes: [*prefixes, "> "]), st.sampled_from(TABLES)
)
line_parts = st.one_of(
    st.tuples(st.lists(st.sampled_from(PREFIXES), max_size=3), st.sampled_from(CONTENTS)), quoted_html, table_rows
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line_parts, min_size=1, max_size=10))
@example([line("> ", "</details>"), line("", "CMD")])
@example([line("> ", "text"), line("> ", "<details>"), line("", "CMD")])
@example([line("> ", "<pre>"), line("", ""), line("> ", "text"), line("", "CMD")])
@example([line("> ", "<pre>"), line("> ", "</pre>"), line("", "CMD")])
@example([line("> ", "<div>"), line(">", ""), line("> ", "text"), line("", "CMD")])
@example([line("> - ", "<div>"), line(">   ", "text"), line("", "CMD")])
@example([line("> ", "a|b"), line("> ", "-|-"), line("", "CMD")])
@example([line("> ", "a|b"), line("> ", "-|-"), line("> ", "x"), line("", "CMD")])
@example([line("> ", "a|b|c"), line("> ", "-|-"), line("> ", ":-"), line("", "CMD")])
def test_quoted_html_or_tables_hide_a_command_exactly_when_github_does(parts):
    body = put_together(parts)
    assert counted_commands(body) == shown_commands(body), body
