"""One fake GitHub for all tests: a real HTTP server that checks every request against
GitHub's OpenAPI description (`shared/github/rest-api-subset.json`) and keeps state.

    async with FakeGitHub(app_public_key_pem=public_pem) as gh:
        gh.add_installation(1, "acme")
        gh.add_repo("acme/web", installation_id=1)
        ...  # point the App's GITHUB_API_URL at gh.url

Requests GitHub would refuse are answered as GitHub would and listed in `gh.errors`;
the `fake_github` fixture fails the test when that list is not empty.
"""

from .routes import ROUTES, Auth
from .server import Call, FakeGitHub, IssuedToken
from .spec import OpenApiSpec, default_spec_path

__all__ = ["ROUTES", "Auth", "Call", "FakeGitHub", "IssuedToken", "OpenApiSpec", "default_spec_path"]
