"""Comments on pull requests: the commands people vote and promote with."""

from __future__ import annotations

from gidgethub import routing, sansio

from ..governance.commands import CommandKind, parse_commands
from ..governance.permissions import Permission
from ..services import Voter
from .context import HandlerContext, is_bot, repo_full_name

router = routing.Router()

# Commands anyone may give; the others need the commenter's permission.
_OPEN_TO_ANYONE = {CommandKind.STATUS, CommandKind.HELP}


@router.register("issue_comment", action="created")
async def comment_created(event: sansio.Event, gh, ctx: HandlerContext) -> None:
    issue = event.data["issue"]
    comment = event.data["comment"]
    author = comment.get("user") or event.data.get("sender")
    commands = parse_commands(comment.get("body"))
    if "pull_request" not in issue or not commands or is_bot(author) or is_bot(event.data.get("sender")):
        return
    repo = repo_full_name(event.data)
    permission = Permission.NONE
    if any(command.kind not in _OPEN_TO_ANYONE for command in commands):
        permission = await ctx.github.permission(
            gh, repo_full_name=repo, login=author["login"], installation_id=ctx.installation_id
        )
    await ctx.service.apply_commands(
        ctx.delivery,
        installation_id=ctx.installation_id,
        repo_full_name=repo,
        pr_number=issue["number"],
        comment_id=comment["id"],
        voter=Voter(login=author["login"], is_bot=False, permission=permission),
        commands=commands,
    )
