from aiohttp import web

from ..runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)
