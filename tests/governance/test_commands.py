"""The command parser, case by case: what votes and what does not."""

import pytest

from pinkflow_bot.governance.commands import (
    HELP_TEXT,
    MAX_REASON_LENGTH,
    Command,
    CommandKind,
    parse_commands,
    strip_non_command_text,
)

A = CommandKind.APPROVE
R = CommandKind.REJECT


def kinds(body):
    return [command.kind for command in parse_commands(body)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("/approve", [A], id="bare"),
        pytest.param("/APPROVE", [A], id="upper-case"),
        pytest.param("/Reject", [R], id="mixed-case"),
        pytest.param("   /approve", [A], id="three-spaces"),
        pytest.param("    /approve", [], id="four-spaces-is-code"),
        pytest.param("\t/approve", [], id="tab-is-code"),
        pytest.param("/approve\t", [A], id="trailing-tab"),
        pytest.param("/abstain", [CommandKind.ABSTAIN], id="abstain"),
        pytest.param("/retract", [CommandKind.RETRACT], id="retract"),
        pytest.param("/hold", [CommandKind.HOLD], id="hold"),
        pytest.param("/unhold", [CommandKind.UNHOLD], id="unhold"),
        pytest.param("/promote", [CommandKind.PROMOTE], id="promote"),
        pytest.param("/status", [CommandKind.STATUS], id="status"),
        pytest.param("/help", [CommandKind.HELP], id="help"),
        pytest.param("Thanks!\n/approve\nGreat work.", [A], id="between-text"),
        pytest.param("/approve\n/hold wait for QA\n/status", [A, CommandKind.HOLD, CommandKind.STATUS], id="in-order"),
        pytest.param("/reject\n/approve", [R, A], id="order-kept"),
        # Not commands.
        pytest.param("/approved", [], id="longer-word"),
        pytest.param("/approvex", [], id="suffix"),
        pytest.param("/approve-now", [], id="hyphenated"),
        pytest.param("/approve.", [], id="punctuation"),
        pytest.param("x /approve", [], id="not-at-line-start"),
        pytest.param("I /approve of this", [], id="mid-sentence"),
        pytest.param("/ approve", [], id="space-after-slash"),
        pytest.param("//approve", [], id="double-slash"),
        pytest.param("/deploy now", [], id="unknown-word"),
        pytest.param("- /approve", [], id="list-item"),
        pytest.param("# /approve", [], id="heading"),
        pytest.param("", [], id="empty"),
        pytest.param(None, [], id="none"),
    ],
)
def test_which_lines_are_commands(body, expected):
    assert kinds(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("```\n/approve\n```\n/reject", [R], id="fenced"),
        pytest.param("```python\n/approve\n```\n/reject", [R], id="fenced-with-info"),
        pytest.param("   ```\n/approve\n   ```\n/reject", [R], id="fence-indented-3"),
        pytest.param("~~~\n/approve\n~~~\n/reject", [R], id="tilde-fenced"),
        pytest.param("````\n```\n/approve\n````\n/reject", [R], id="longer-fence-not-closed-by-shorter"),
        pytest.param("~~~\n```\n/approve\n~~~\n/reject", [R], id="tilde-not-closed-by-backticks"),
        pytest.param("```\n/approve\n~~~\n/approve", [], id="unclosed-fence-runs-to-end"),
        pytest.param("```\n/approve\n``` not a close\n/approve\n```\n/reject", [R], id="close-needs-bare-fence"),
        pytest.param("Some text\n\n    /approve\n/reject", [R], id="indented-code-after-blank"),
        pytest.param("    /approve\n    /reject", [], id="indented-code-at-start"),
        pytest.param("`/approve`", [], id="inline-code"),
        pytest.param("`/approve`\n/reject", [R], id="inline-code-then-command"),
        pytest.param("`` /approve ``", [], id="double-backtick-span"),
        pytest.param("`` `/approve` ``\n/reject", [R], id="span-holding-backticks"),
        pytest.param("`x` /approve", [], id="text-after-span-is-not-line-start"),
        pytest.param("`one\n/approve\ntwo`\n/reject", [R], id="span-over-lines"),
        pytest.param("an odd ` backtick\n/approve", [A], id="unmatched-backtick-is-literal"),
        pytest.param("a ` here\n\n/approve `", [A], id="span-stops-at-blank-line"),
        pytest.param("> /approve", [], id="quote"),
        pytest.param("   > /approve\n\n/reject", [R], id="quote-indented"),
        pytest.param(">/approve", [], id="quote-no-space"),
        pytest.param("> > /approve", [], id="nested-quote"),
        pytest.param("> quoted\n\n/approve", [A], id="line-after-quote"),
        pytest.param("<!-- /approve -->", [], id="html-comment"),
        pytest.param("<!--\n/approve\n-->\n/reject", [R], id="multi-line-html-comment"),
        pytest.param("<!--\n\n/approve\n\n-->", [], id="comment-with-blank-lines"),
        pytest.param("<!-- unclosed\n/approve\n/reject", [], id="unclosed-comment-runs-to-end"),
        pytest.param("<!-- note -->/approve", [], id="text-after-comment-is-not-line-start"),
        pytest.param("<!---->\n/approve", [A], id="empty-comment"),
        pytest.param("<!-->\n/approve", [A], id="shortest-comment"),
        pytest.param("```\n<!--\n```\n/approve", [A], id="comment-opener-inside-fence"),
        pytest.param("`<!--`\n/approve", [A], id="comment-opener-inside-code-span"),
        pytest.param("<!--\n```\n-->\n/approve", [A], id="fence-inside-comment"),
        # A fence can open a list item: what it holds is code all the same (as GitHub renders it).
        pytest.param("- ```\n  /approve\n  ```\n/reject", [R], id="fence-opening-a-list-item"),
        pytest.param("- ~~~\n  /approve\n  ~~~\n/reject", [R], id="tilde-fence-opening-a-list-item"),
        pytest.param("* ```\n   /approve\n  ```\n/reject", [R], id="fence-opening-a-star-item"),
        pytest.param("+ ```python\n  /approve\n  ```\n/reject", [R], id="fence-with-info-opening-a-plus-item"),
        pytest.param("1. ```\n   /approve\n   ```\n/reject", [R], id="fence-opening-a-numbered-item"),
        pytest.param("1) ~~~\n   /approve\n   ~~~\n/reject", [R], id="fence-opening-a-paren-numbered-item"),
        pytest.param(" - ```\n   /approve\n   ```\n/reject", [R], id="fence-opening-an-indented-item"),
        pytest.param("- ```\n  /approve\n\n  /hold\n  ```\n/reject", [R], id="item-fence-with-blank-lines"),
        pytest.param("- ~~~\n  ```\n  /approve\n  ~~~\n/reject", [R], id="item-fence-not-closed-by-other-fence"),
        pytest.param("- ```\n  /approve", [], id="unclosed-item-fence-runs-to-end"),
        pytest.param("text\n- ```\n  /approve\n  ```\n/reject", [R], id="item-fence-interrupting-a-paragraph"),
        pytest.param("- item\n2. ```\n   /approve\n   ```\n/reject", [R], id="item-fence-in-a-list-after-a-list"),
        pytest.param("- ```\n  /approve\n- item\n/reject", [R], id="next-item-ends-the-fence"),
        # The item, and its fence, end at a line indented less than the item's text.
        pytest.param("- ```\n/approve\n```", [A], id="line-outside-the-item-ends-its-fence"),
        pytest.param("- ```\n  /approve\n```\n/reject", [], id="fence-after-the-item-opens-another"),
        # What is not a list item with a fence stays as it was.
        pytest.param("text\n2. ```\n   /approve\n   ```\n/reject", [A], id="only-1-starts-a-list-in-a-paragraph"),
        pytest.param("- - -\n  ```\n/approve", [], id="a-rule-is-not-a-list"),
        pytest.param("1.\n\n   ```\n/approve\n```", [], id="an-empty-item-ends-at-a-blank-line"),
        pytest.param("- ```a`\n  /approve", [A], id="backtick-in-info-is-not-a-fence"),
    ],
)
def test_hidden_text_never_votes(body, expected):
    assert kinds(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("/approve looks good", Command(A, reason="looks good"), id="reason"),
        pytest.param("/reject   breaks\tthe   mobile layout  ", Command(R, reason="breaks the mobile layout"), id="collapsed"),
        pytest.param("/approve `fix.py` is fine", Command(A, reason="`fix.py` is fine"), id="code-kept-in-reason"),
        pytest.param("/approve ok <!-- private --> then", Command(A, reason="ok then"), id="comment-dropped"),
        pytest.param("/approve cancel", Command(CommandKind.RETRACT), id="approve-cancel"),
        pytest.param("/reject CANCEL", Command(CommandKind.RETRACT), id="reject-cancel"),
        pytest.param("/abstain cancel", Command(CommandKind.RETRACT), id="abstain-cancel"),
        pytest.param("/approve  Cancel  ", Command(CommandKind.RETRACT), id="cancel-spaces"),
        pytest.param("/approve cancel please", Command(A, reason="cancel please"), id="cancel-needs-whole-line"),
        pytest.param("/retract I changed my mind", Command(CommandKind.RETRACT), id="retract-ignores-text"),
        pytest.param("/promote --force", Command(CommandKind.PROMOTE, force=True), id="force"),
        pytest.param("/promote now --force", Command(CommandKind.PROMOTE, reason="now", force=True), id="force-later"),
        pytest.param("/promote --FORCE", Command(CommandKind.PROMOTE, force=True), id="force-upper"),
        pytest.param("/promote --forced", Command(CommandKind.PROMOTE, reason="--forced"), id="not-force"),
        pytest.param("/approve --force", Command(A, reason="--force"), id="force-only-for-promote"),
        pytest.param("/hold waiting for QA", Command(CommandKind.HOLD, reason="waiting for QA"), id="hold-reason"),
        pytest.param("/status please", Command(CommandKind.STATUS), id="status-ignores-text"),
        pytest.param("/reject breaks\x00 it", Command(R, reason="breaks\ufffd it"), id="nul-as-github-shows-it"),
    ],
)
def test_reasons_and_flags(body, expected):
    assert parse_commands(body) == (expected,)


def test_reason_is_capped():
    (command,) = parse_commands("/reject " + "word " * 400)
    assert len(command.reason) == MAX_REASON_LENGTH
    assert command.reason.startswith("word word")
    assert command.reason.endswith("…")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("/approve yes\r\n/reject no\r\n", id="crlf"),
        pytest.param("/approve yes\r/reject no\r", id="cr"),
        pytest.param("/approve yes\n/reject no\n", id="lf"),
    ],
)
def test_line_endings(body):
    assert parse_commands(body) == (Command(A, reason="yes"), Command(R, reason="no"))


def test_reasons_never_contain_carriage_returns():
    (command,) = parse_commands("```\r\nx\r\n```\r\n/approve fine\r\n")
    assert command == Command(A, reason="fine")


def test_a_realistic_review_comment():
    body = (
        "> Can someone check the preview?\r\n"
        "\r\n"
        "Checked on my phone. To vote, write:\r\n"
        "\r\n"
        "```\r\n"
        "/reject <reason>\r\n"
        "```\r\n"
        "<!-- /abstain was my first thought -->\r\n"
        "/approve works on `iOS` and Android\r\n"
        "/hold until the copy is final\r\n"
    )
    assert parse_commands(body) == (
        Command(A, reason="works on `iOS` and Android"),
        Command(CommandKind.HOLD, reason="until the copy is final"),
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("a\r\nb\rc", "a\nb\nc", id="line-endings"),
        pytest.param("a\n```\n/approve\n```\nb", "a\n\n\n\nb", id="fence-lines-emptied"),
        pytest.param("a\n> /approve\nb\n\nc", "a\n\n\n\nc", id="quote-emptied"),
        pytest.param("x `code` y", "x … y", id="span-elided"),
        pytest.param("x <!-- c --> y", "x … y", id="comment-elided"),
        pytest.param("<!--\n\n-->\nb", "…\n\n…\nb", id="comment-keeps-blank-lines"),
        pytest.param("plain /approve text", "plain /approve text", id="plain-unchanged"),
    ],
)
def test_strip_non_command_text(body, expected):
    assert strip_non_command_text(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # A line right under quoted text, with no blank line between, is in the quote for
        # GitHub (CommonMark's "lazy continuation"): it does not vote.
        pytest.param("> I think we should ship\n/approve", [], id="command-under-a-quote"),
        pytest.param("> I think\nwe should ship\n/approve", [], id="lines-under-a-quote"),
        pytest.param(">I think\n   /approve", [], id="indented-command-under-a-quote"),
        pytest.param("> I think\n/approve\n> so\n/reject", [], id="quote-going-on"),
        pytest.param("> > I think\n/approve", [], id="under-a-nested-quote"),
        pytest.param("> > I think\n> > so\n> too\n/approve", [], id="under-nested-quotes"),
        pytest.param("- > I think\n/approve", [], id="under-a-quote-in-a-list-item"),
        pytest.param("- > I think\n  /approve", [], id="under-a-quote-in-the-item"),
        pytest.param("> - I think\n/approve", [], id="under-a-list-item-in-a-quote"),
        pytest.param("> I think\n    /approve", [], id="indented-four-under-a-quote"),
        pytest.param("> I think\n===\n/approve", [], id="no-heading-under-a-quote"),
        pytest.param("> I think\n2. so\n/approve", [A], id="a-list-of-any-number-ends-a-quote"),
        # A blank line, or a line that starts a block of its own, ends the quote.
        pytest.param("> I think we should ship\n\n/approve", [A], id="blank-line-after-a-quote"),
        pytest.param("> > I think\n\n/approve", [A], id="blank-line-after-nested-quotes"),
        pytest.param("- > I think\n\n  /approve", [A], id="blank-line-after-a-quote-in-an-item"),
        pytest.param("> I think\n- /reject\n/approve", [A], id="list-item-after-a-quote"),
        pytest.param("> I think\n---\n/approve", [A], id="rule-after-a-quote"),
        pytest.param("> I think\n# Vote\n/approve", [A], id="heading-after-a-quote"),
        pytest.param("> I think\n```\nx\n```\n/approve", [A], id="fence-after-a-quote"),
        pytest.param("> I think\n<!-- note -->\n/approve", [A], id="comment-after-a-quote"),
        # Only a quote that ends with paragraph text goes on.
        pytest.param("> I think\n>\n/approve", [A], id="quote-ending-with-a-blank-quote-line"),
        pytest.param("> ```\n> /reject\n/approve", [A], id="quote-ending-in-a-fence"),
        pytest.param("> ```\n/approve", [A], id="quote-opening-a-fence"),
        pytest.param("> - ```\n>   x\n/approve", [A], id="quote-ending-in-a-fence-in-an-item"),
        pytest.param(">     code\n/approve", [A], id="quote-ending-in-indented-code"),
        pytest.param("> # Title\n/approve", [A], id="quote-ending-in-a-heading"),
        pytest.param("> I think\n> ===\n/approve", [A], id="quote-ending-in-an-underlined-heading"),
        pytest.param("> <!--\n/approve", [A], id="quote-ending-in-a-comment"),
        pytest.param("> * <!-- note -->\n/approve", [A], id="quote-ending-in-a-comment-in-an-item"),
        pytest.param("> I think\n> - * \n/approve", [A], id="quote-ending-in-an-empty-item"),
        pytest.param(">\n    > /reject\n/approve", [A], id="quote-then-indented-code"),
    ],
)
def test_a_line_under_a_quote_is_in_the_quote_as_github_shows_it(body, expected):
    assert kinds(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # An HTML comment opened in a paragraph ends with it: unclosed there, it is text.
        pytest.param("Looks good <!--\n\n/approve", [A], id="unclosed-comment-in-a-paragraph"),
        pytest.param("Looks good <!--\n\n/approve\n\n-->", [A], id="comment-closing-after-its-paragraph"),
        pytest.param("Looks good <!--\n/reject\n-->\n/approve", [A], id="comment-within-its-paragraph"),
        # An HTML comment block in a list item ends with the item.
        pytest.param("- <!--\n/approve", [A], id="comment-block-in-an-item"),
        pytest.param("- <!--\n  /reject\n\n  -->\n/approve", [A], id="comment-block-closing-in-an-item"),
        pytest.param("-\n  <!--\n  /reject\n/approve", [A], id="comment-block-under-an-empty-item"),
    ],
)
def test_an_html_comment_hides_what_github_hides(body, expected):
    assert kinds(body) == expected


def test_help_lists_every_command():
    for kind in CommandKind:
        assert f"`/{kind.value}" in HELP_TEXT
    assert "`/promote --force`" in HELP_TEXT
    assert "`/approve cancel`" in HELP_TEXT


def test_help_says_a_line_right_under_a_quote_is_quoted():
    assert "a line right under a quote (no blank line between) is in the quote" in HELP_TEXT
