"""Properties of the command parser over generated comments."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from pinkflow_bot.governance.commands import MAX_REASON_LENGTH, CommandKind, parse_commands, strip_non_command_text

COMMAND_WORDS = [kind.value for kind in CommandKind]

# Fragments that stress the markdown scanner, mixed with arbitrary text.
MARKDOWN_BITS = [
    "```", "~~~", "````", "`", "``", "<!--", "-->", ">", "> ", "\n", "\r\n", "\r", "    ", "\t", " ",
    "/approve", "/reject cancel", "/promote --force", "/", "approve", "x", "\n\n",
]
markdown_text = st.lists(st.one_of(st.sampled_from(MARKDOWN_BITS), st.text(max_size=12)), max_size=40).map("".join)

command_lines = st.builds(
    lambda word, upper, indent, reason: " " * indent + "/" + (word.upper() if upper else word) + reason,
    st.sampled_from(COMMAND_WORDS),
    st.booleans(),
    st.integers(min_value=0, max_value=3),
    st.one_of(st.just(""), st.text(alphabet="abc XYZ.,!?-", max_size=30).map(lambda s: " " + s)),
)
# Prose that cannot open or close any markdown construct by itself.
inert_prose = st.text(alphabet="abc XYZ.,!?\n", max_size=40)


def starts_with_slash(line):
    return line.lstrip().startswith("/")


@settings(max_examples=200)
@given(markdown_text)
def test_text_without_a_line_starting_with_slash_never_has_commands(body):
    lines = re.split(r"\r\n|\r|\n", body)
    if any(starts_with_slash(line) for line in lines):
        body = "\n".join(line for line in lines if not starts_with_slash(line))
    assert parse_commands(body) == ()


@settings(max_examples=200)
@given(
    line=command_lines,
    wrap=st.sampled_from(
        [
            "```\n{}\n```",
            "~~~\n{}\n~~~",
            "```js\n{}\n```",
            "   ```\n{}\n   ```",
            "> {}",
            ">{}",
            "   > {}",
            "<!-- {} -->",
            "<!--\n{}\n-->",
            "<!--{}",
            "`{}`",
            "`` {} ``",
            "`\n{}\n`",
            "\n    {}",
        ]
    ),
    before=inert_prose,
    after=inert_prose,
)
def test_a_wrapped_command_never_counts(line, wrap, before, after):
    # The command on its own counts; wrapped, it does not.
    assert len(parse_commands(line)) == 1
    body = f"{before}\n\n{wrap.format(line)}\n\n{after}"
    assert parse_commands(body) == ()


@settings(max_examples=200)
@given(st.one_of(st.text(), markdown_text))
def test_parsing_never_fails_and_reasons_stay_one_short_line(body):
    commands = parse_commands(body)
    stripped = strip_non_command_text(body)
    assert "\r" not in stripped
    assert len(commands) <= stripped.count("/")
    for command in commands:
        assert isinstance(command.kind, CommandKind)
        assert len(command.reason) <= MAX_REASON_LENGTH
        assert "\n" not in command.reason and "\r" not in command.reason
        assert command.reason == command.reason.strip()
        assert not command.force or command.kind is CommandKind.PROMOTE


@settings(max_examples=200)
@given(st.lists(command_lines, min_size=1, max_size=6), inert_prose)
def test_every_command_line_counts_in_order(lines, prose):
    prose_lines = [line for line in prose.split("\n") if not starts_with_slash(line)]
    body = "\n".join(prose_lines + lines)
    parsed = parse_commands(body)
    assert len(parsed) == len(lines)
    for command, line in zip(parsed, lines):
        word = line.strip().split()[0][1:].lower()
        rest = line.strip()[len(word) + 1 :].split()
        if word in {"approve", "reject", "abstain"} and [w.lower() for w in rest] == ["cancel"]:
            assert command.kind is CommandKind.RETRACT
        else:
            assert command.kind == word
