"""The command parser against any text: it never fails, never finds a command that is not
at the start of a visible line, and finds every one that is."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pinkflow_bot.governance.commands import MAX_REASON_LENGTH, CommandKind, parse_commands

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WORDS = [kind.value for kind in CommandKind]
# A line the parser could read as a command: at most three spaces, a slash, a command word,
# then whitespace or the end of the line. Lines end at LF, CR LF or a lone CR, as in the parser.
COMMAND_LINE = re.compile(r"^ {0,3}/(" + "|".join(WORDS) + r")(?=\s|$)", re.IGNORECASE)
LINE_BREAK = re.compile(r"\r\n|\r|\n")

# Text a hostile or careless commenter could write: every plane, controls, bidi marks,
# zero-width joiners, combining marks, full-width and look-alike slashes.
tricky = st.sampled_from(
    ["/", "\\", "／", "∕", "⁄", "\u200b", "\u200d", "\u202e", "\u2066", "\ufeff", "\u0301", "\u00a0", "\t", "\r", "\n",
     "\r\n", "\u2028", "\u2029", "\x0b", "\x0c", "\x85", "\x00", "`", "```", "~~~", "<!--", "-->", ">", "    ", "İ", "ı",
     "K", "ß", "🚀", "👍🏽", "𝓪𝓹𝓹𝓻𝓸𝓿𝓮"]
)
any_text = st.lists(st.one_of(st.text(max_size=40), tricky, st.sampled_from([f"/{w}" for w in WORDS])), max_size=40).map(
    "".join
)


def command_lines(body: str) -> list[str]:
    return [line for line in LINE_BREAK.split(body) if COMMAND_LINE.match(line)]


@FUZZ
@given(any_text)
@example("\u2028/approve")  # a Unicode line separator is not a line break in a comment
@example("／approve")  # a full-width solidus is not a slash
@example("/approve\u200b")  # a zero-width space is not whitespace: not the word "approve"
@example("x\r/approve")  # a lone CR is a line break, as in GitHub's rendering
def test_any_text_parses_without_error_and_commands_come_only_from_command_lines(body):
    commands = parse_commands(body)
    assert isinstance(commands, tuple)
    assert len(commands) <= len(command_lines(body))
    for command in commands:
        assert command.kind in CommandKind
        assert len(command.reason) <= MAX_REASON_LENGTH
        assert "\n" not in command.reason and "\r" not in command.reason


# Plain words that cannot open a code span, a comment, a quote or a fence.
plain = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="`~<>-\\/\u0085"),
    max_size=30,
)
command = st.tuples(st.sampled_from(WORDS), st.sampled_from(["", " ", "  ", "   "]), plain, st.booleans())


def as_line(word: str, indent: str, reason: str, upper: bool) -> str:
    return f"{indent}/{word.upper() if upper else word} {reason}".rstrip()


@FUZZ
@given(st.lists(command, min_size=1, max_size=6), st.lists(plain, max_size=6))
def test_commands_hidden_in_code_quotes_or_comments_never_count(commands, prose):
    lines = [as_line(*c) for c in commands]
    inner = "\n".join(lines)
    hidden = [
        f"```\n{inner}\n```",
        f"~~~~ yaml\n{inner}\n~~~~",
        "\n".join(f"> {line}" for line in lines),
        "\n".join(f">{line}" for line in lines),
        "> quoted text\n" + inner,  # right under quoted text, the lines go on in the quote
        "- > quoted text\n" + "\n".join(f"  {line.lstrip()}" for line in lines),
        "> > quoted text\n> " + inner,
        f"<!--\n{inner}\n-->",
        "\n".join(f"    {line.lstrip()}" for line in lines),  # an indented code block
        "\n".join(f"`{line}`" for line in lines),
        "\n".join(f"see `x` {line.lstrip()}" for line in lines),  # not at the start of the line
        f"```\n{inner}",  # a fence never closed hides the rest of the comment
        f"<!-- {inner}",
        # A fence that opens a list item holds code down to its closing fence, or the item's end.
        "- ```\n" + "\n".join(f"  {line.lstrip()}" for line in lines) + "\n  ```",
        "* ~~~ yaml\n" + "\n".join(f"   {line.lstrip()}" for line in lines) + "\n  ~~~",
        "1. ```\n" + "\n".join(f"   {line.lstrip()}" for line in lines) + "\n   ```",
        "- item\n2) ~~~\n" + "\n".join(f"   {line.lstrip()}" for line in lines) + "\n   ~~~",  # a list after a list
        "- item\n\n  ```\n" + "\n".join(f"  {line.lstrip()}" for line in lines) + "\n  ```",
        "- ```\n" + "\n".join(f"  {line.lstrip()}" for line in lines),
    ]
    for body in hidden:
        text = "\n\n".join([*prose, body])
        assert parse_commands(text) == (), text


@FUZZ
@given(st.lists(st.tuples(command, st.lists(plain, max_size=2)), min_size=1, max_size=8))
def test_every_command_at_the_start_of_a_line_counts_in_order(parts):
    lines = []
    for (word, indent, reason, upper), filler in parts:
        lines.append(as_line(word, indent, reason, upper))
        # Prose between commands: no slash, so never a command of its own.
        lines += [text.lstrip(" ") for text in filler if text.strip()]
    body = "\n".join(lines)
    # `/approve cancel` withdraws the vote: it is read as /retract.
    wanted = [
        "retract" if word in ("approve", "reject", "abstain") and reason.strip().lower() == "cancel" else word
        for (word, _, reason, _), _ in parts
    ]
    assert [c.kind.value for c in parse_commands(body)] == wanted


@FUZZ
@given(st.sampled_from(["approve", "reject", "abstain"]), st.text(max_size=2000))
def test_a_reason_is_one_line_of_collapsed_whitespace_and_bounded(word, reason):
    [parsed, *_] = parse_commands(f"/{word} {reason}") or (None,)
    if parsed is None:
        return  # the reason opened a block that hides the line (e.g. an unclosed "<!--")
    assert parsed.reason == parsed.reason.strip()
    assert "  " not in parsed.reason
    assert len(parsed.reason) <= MAX_REASON_LENGTH


@pytest.mark.parametrize(
    "body",
    [
        "`" * 200_000,
        "`a" * 100_000,
        "<!--" * 50_000,
        "x" + "<!--" * 50_000,
        "> " * 100_000,
        ("> " * 2_000 + "x\n") * 30 + "/approve",
        ("```\n" * 20_000) + "/approve",
        ("x\n" * 100_000) + "/approve",
        "/approve " + "é" * 1_000_000,
    ],
    ids=["backticks", "unclosed spans", "unclosed comments", "unclosed inline comments", "quotes", "nested quotes", "fences", "many lines", "huge reason"],
)
def test_oversized_and_pathological_comments_parse(body):
    commands = parse_commands(body)
    for parsed in commands:
        assert len(parsed.reason) <= MAX_REASON_LENGTH
    if body.endswith("/approve") and body.startswith("x"):
        assert [c.kind for c in commands] == [CommandKind.APPROVE]
