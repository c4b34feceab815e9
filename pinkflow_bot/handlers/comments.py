"""Comments on pull requests: the commands people vote and promote with, their edits and deletions."""

from __future__ import annotations

import logging

from gidgethub import routing, sansio

from ..governance.commands import Command, CommandKind, parse_commands
from ..governance.permissions import Permission
from ..services import VOTE_CHOICES, Voter, proposal_rules
from ..storage import proposals as queries
from .context import HandlerContext, github_time, is_bot, repo_full_name

router = routing.Router()
log = logging.getLogger(__name__)

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
    await ctx.service.apply_commands(
        ctx.delivery,
        installation_id=ctx.installation_id,
        repo_full_name=repo_full_name(event.data),
        pr_number=issue["number"],
        comment_id=comment["id"],
        voter=await _voter(event, gh, ctx, login=author["login"], commands=commands),
        commands=commands,
        written_at=github_time(comment.get("created_at")),
    )


@router.register("issue_comment", action="edited")
async def comment_edited(event: sansio.Event, gh, ctx: HandlerContext) -> None:
    """The vote follows the new text, if its author edited it; anyone else's edit is tampering."""
    issue = event.data["issue"]
    comment = event.data["comment"]
    author = comment.get("user") or {}
    editor = event.data.get("sender") or {}
    before = parse_commands(((event.data.get("changes") or {}).get("body") or {}).get("from"))
    after = parse_commands(comment.get("body"))
    if "pull_request" not in issue or is_bot(author) or not (before or after):
        return
    repo = repo_full_name(event.data)
    if str(editor.get("login", "")).lower() != str(author.get("login", "")).lower():
        await ctx.service.record_tampering(
            ctx.delivery,
            repo_full_name=repo,
            pr_number=issue["number"],
            comment_id=comment["id"],
            author=author.get("login", ""),
            editor=editor.get("login", ""),
        )
        return
    votes = tuple(command for command in after if command.kind in VOTE_CHOICES)
    await ctx.service.apply_comment_edit(
        ctx.delivery,
        installation_id=ctx.installation_id,
        repo_full_name=repo,
        pr_number=issue["number"],
        comment_id=comment["id"],
        voter=await _voter(event, gh, ctx, login=author["login"], commands=votes),
        commands=votes,
        written_at=github_time(comment.get("created_at")),
        edited_at=github_time(comment.get("updated_at")),
    )


@router.register("issue_comment", action="deleted")
async def comment_deleted(event: sansio.Event, gh, ctx: HandlerContext) -> None:
    """A deleted comment's vote is withdrawn; a deleted status comment is posted anew by the next sync."""
    issue = event.data["issue"]
    comment = event.data["comment"]
    if "pull_request" not in issue:
        return
    if is_bot(comment.get("user")):
        await ctx.service.forget_status_comment(
            ctx.delivery, repo_full_name=repo_full_name(event.data), pr_number=issue["number"], comment_id=comment["id"]
        )
        return
    await ctx.service.withdraw_deleted_comment(
        ctx.delivery,
        repo_full_name=repo_full_name(event.data),
        pr_number=issue["number"],
        comment_id=comment["id"],
        deleted_by=(event.data.get("sender") or {}).get("login") or (comment.get("user") or {}).get("login", ""),
    )


async def _voter(event: sansio.Event, gh, ctx: HandlerContext, *, login: str, commands: tuple[Command, ...]) -> Voter:
    """The commenter as the commands need them: their permission, and for votes the
    configured teams they belong to (a voter gets the highest weight that applies)."""
    if all(command.kind in _OPEN_TO_ANYONE for command in commands):
        return Voter(login=login, is_bot=False, permission=Permission.NONE)
    repo = repo_full_name(event.data)
    permission = await ctx.github.permission(gh, repo_full_name=repo, login=login, installation_id=ctx.installation_id)
    if not any(command.kind in VOTE_CHOICES for command in commands):
        return Voter(login=login, is_bot=False, permission=permission)
    async with ctx.service.read() as session:
        proposal = await queries.current_proposal(session, repo_full_name=repo, pr_number=event.data["issue"]["number"])
    configured = proposal_rules(proposal).team_weights if proposal is not None else {}
    memberships = await ctx.github.teams_of(gh, login=login, teams=configured)
    return Voter(login=login, is_bot=False, permission=permission, teams=memberships.teams, unknown_teams=memberships.unknown)
