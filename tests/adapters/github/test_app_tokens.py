"""GitHub App tokens (issue #24): the adapter against the loopback fake GitHub, over real HTTP.

Three parts: the contract of `GitHubAppTokens` (a token for the one repository, the JWT it
signs, every refusal as a sentence a user can act on, nothing secret in any of them, the
installation cached); the fake's own checks (it refuses what GitHub refuses, so passing
here means something); and `GitHubAppSettings` (every problem, the `\\n`-escaped key).
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fakes.github import (
    APP_ID,
    BAD_JWT,
    CLIENT_ID,
    EXP_TOO_FAR,
    EXPIRED,
    IAT_AHEAD,
    PERMISSIONS_NOT_GRANTED,
    REPO_NOT_REACHABLE,
    FakeGitHub,
    open_fake_github,
    pem_of,
    rsa_key,
)
from opendispatch.adapters.github import GitHubAppSettings, GitHubAppTokens
from opendispatch.adapters.github.settings import NOT_CONFIGURED
from opendispatch.domain.errors import ConfigError
from opendispatch.domain.repo_credentials import DEFAULT_PERMISSIONS, CredentialsUnavailable, GitHubRepo, RepoToken

ACME_API = GitHubRepo("acme", "api")


@pytest.fixture
async def fake() -> AsyncIterator[FakeGitHub]:
    async with open_fake_github() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


def tokens_for(fake: FakeGitHub, http: httpx.AsyncClient, **kwargs: object) -> GitHubAppTokens:
    options: dict[str, object] = {"app_id": str(APP_ID), "private_key": fake.private_key_pem, "api_url": fake.base_url}
    options.update(kwargs)
    return GitHubAppTokens(http=http, **options)  # type: ignore[arg-type]


async def refusal(tokens: GitHubAppTokens, repo: GitHubRepo = ACME_API) -> str:
    with pytest.raises(CredentialsUnavailable) as raised:
        await tokens.mint(repo)
    return str(raised.value)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- the adapter's contract --------------------------------------------------------------------


async def test_a_token_reaches_the_one_repository_with_the_default_permissions(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    fake.install("acme", ["api", "web"])
    fake.token_lifetime_s = 1800
    before = time.time()
    token = await tokens_for(fake, http).mint(ACME_API)
    after = time.time()

    assert token.token.startswith("ghs_")
    [minted] = fake.tokens
    assert minted.token == token.token
    assert minted.repositories == ("api",) and dict(minted.permissions) == dict(DEFAULT_PERMISSIONS)
    assert token.expires_at == minted.expires_at  # GitHub's ISO time read back to the second
    assert int(before) + 1800 <= token.expires_at <= after + 1800
    assert fake.token_allows(token.token, "acme", "api", contents="write")
    assert not fake.token_allows(token.token, "acme", "web")  # in the installation, not in the token
    assert not fake.token_allows(token.token, "acme", "api", now=token.expires_at)


async def test_requests_carry_githubs_headers(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    fake.install("acme", ["api"])
    await tokens_for(fake, http).mint(ACME_API)
    assert [(r.method, r.status) for r in fake.requests] == [("GET", 200), ("POST", 201)]
    for logged in fake.requests:
        assert logged.headers["accept"] == "application/vnd.github+json"
        assert logged.headers["x-github-api-version"] == "2022-11-28"
        assert logged.headers["user-agent"] == "open-dispatch"


async def test_the_jwt_is_verified_and_its_times_respect_githubs_bounds(http: httpx.AsyncClient) -> None:
    now = 1_800_000_000.5
    async with open_fake_github(clock=lambda: now) as fake:
        fake.install("acme", ["api"])
        await tokens_for(fake, http, wall_clock=lambda: now).mint(ACME_API)
        for logged in fake.requests:
            claims = logged.claims
            assert claims is not None  # the fake verified the signature, iss and times
            assert claims["iat"] == int(now) - 60 and claims["exp"] == int(now) + 540
            assert claims["exp"] - claims["iat"] == 600 and claims["iss"] == str(APP_ID)
        assert fake.refusals == []


async def test_the_client_id_serves_as_the_issuer(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    fake.install("acme", ["api"])
    await tokens_for(fake, http, app_id=CLIENT_ID).mint(ACME_API)
    assert {r.claims["iss"] for r in fake.requests if r.claims} == {CLIENT_ID}


async def test_not_installed_names_the_install_page_and_mints_nothing(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    fake.install("acme", ["web"])
    message = await refusal(tokens_for(fake, http))
    assert message == (
        "The GitHub App is not installed on acme/api (or there is no such repository): install it at "
        "https://github.com/apps/open-dispatch-test/installations/new and give it access to api."
    )
    assert fake.mint_requests() == []


async def test_not_installed_without_the_apps_page_says_where_to_install_from(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    fake.fail_next(500, path="/app")
    message = await refusal(tokens_for(fake, http))
    assert message == (
        "The GitHub App is not installed on acme/api (or there is no such repository): "
        "install the app on it from its settings page (Install App)."
    )


async def test_the_apps_page_is_fetched_once(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    tokens = tokens_for(fake, http)
    await refusal(tokens)
    await refusal(tokens, GitHubRepo("acme", "web"))
    assert len(fake.requests_to("GET", "/app")) == 1


async def test_a_wrong_key_is_refused_with_what_to_check(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    fake.install("acme", ["api"])
    message = await refusal(tokens_for(fake, http, private_key=pem_of(rsa_key("stranger"))))
    assert message == (
        "GitHub refused the GitHub App's credentials (401): check GITHUB_APP_ID (or GITHUB_APP_CLIENT_ID) "
        f'and GITHUB_APP_PRIVATE_KEY, and this machine\'s clock (GitHub said: "{BAD_JWT}").'
    )
    assert fake.refusals == [BAD_JWT] and fake.mint_requests() == []


async def test_a_clock_twenty_minutes_fast_is_refused_naming_the_claim(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    fake.install("acme", ["api"])
    message = await refusal(tokens_for(fake, http, wall_clock=lambda: time.time() + 1200))
    assert message.startswith("GitHub refused the GitHub App's credentials (401)")
    assert IAT_AHEAD in message


async def test_a_repository_outside_the_installation_says_where_to_add_it(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    installation = fake.install("acme", ["api"])
    tokens = tokens_for(fake, http)
    await tokens.mint(ACME_API)
    assert installation.repositories is not None
    installation.repositories.discard("api")  # removed from the installation since we cached it
    message = await refusal(tokens)
    assert message == (
        "acme/api is not among the repositories the GitHub App's installation may reach: add it at "
        f'https://github.com/organizations/acme/settings/installations/{installation.id} (GitHub said: "{REPO_NOT_REACHABLE}").'
    )


async def test_permissions_beyond_the_installations_grants_say_which_were_asked(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    fake.install("acme", ["api"], permissions={"contents": "read", "metadata": "read"})
    message = await refusal(tokens_for(fake, http))
    assert message == (
        "GitHub refused a token for acme/api with contents:write, pull_requests:write (HTTP 422) "
        f'(GitHub said: "{PERMISSIONS_NOT_GRANTED}"): the GitHub App\'s installation on acme was not granted '
        "all of these. Grant them in the app's settings (Permissions) and accept them on the installation, "
        "or ask for fewer with GITHUB_APP_PERMISSIONS."
    )
    assert fake.tokens == []
    token = await tokens_for(fake, http, permissions={"contents": "read"}).mint(ACME_API)
    assert fake.token_allows(token.token, "acme", "api") and not fake.token_allows(token.token, "acme", "api", contents="write")


async def test_a_403_on_the_token_request_is_about_permissions(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    fake.install("acme", ["api"])
    fake.fail_next(403, "Resource not accessible by integration", path="/access_tokens")
    message = await refusal(tokens_for(fake, http, permissions={"contents": "write"}))
    assert message.startswith(
        "GitHub refused a token for acme/api with contents:write (HTTP 403) "
        '(GitHub said: "Resource not accessible by integration"): '
    )
    assert "GITHUB_APP_PERMISSIONS" in message


async def test_a_rate_limit_says_to_wait(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    fake.install("acme", ["api"])
    fake.fail_next(403, "API rate limit exceeded for installation.")
    message = await refusal(tokens_for(fake, http))
    assert message == (
        'GitHub is rate-limiting the GitHub App (GitHub said: "API rate limit exceeded for installation."); '
        "try again in a few minutes."
    )


@pytest.mark.parametrize("failure", ["down", "502"])
async def test_a_failing_github_says_to_try_again(fake: FakeGitHub, http: httpx.AsyncClient, failure: str) -> None:
    fake.install("acme", ["api"])
    if failure == "down":
        fake.down = True
    else:
        fake.fail_next(502, "Server Error", path="/access_tokens")
    status = 503 if failure == "down" else 502
    host = fake.base_url.removeprefix("http://")
    assert await refusal(tokens_for(fake, http)) == (
        f"GitHub's API did not answer (HTTP {status} from {host}); try again in a minute."
    )


async def test_a_refused_connection_says_to_try_again(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    port = closed_port()
    message = await refusal(tokens_for(fake, http, api_url=f"http://127.0.0.1:{port}"))
    assert message == f"GitHub's API did not answer (could not connect to 127.0.0.1:{port}); try again in a minute."


async def test_a_silent_github_times_out_with_the_clients_timeout(fake: FakeGitHub) -> None:
    fake.stall = True
    async with httpx.AsyncClient(timeout=0.2) as impatient:
        message = await refusal(tokens_for(fake, impatient))
    host = fake.base_url.removeprefix("http://")
    assert message == f"GitHub's API did not answer (no answer from {host} in time); try again in a minute."


async def test_no_secret_reaches_a_message_or_a_repr(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    """Every refusal above, collected: none holds a token, a JWT or the key."""
    installation = fake.install("acme", ["api"], permissions={"contents": "write", "pull_requests": "write"})
    tokens = tokens_for(fake, http)
    token = await tokens.mint(ACME_API)
    messages = [await refusal(tokens_for(fake, http, private_key=pem_of(rsa_key("stranger"))))]
    fake.fail_next(401, f"Bad credentials for {token.token}", path="/access_tokens")  # GitHub echoing a secret
    messages.append(await refusal(tokens))
    installation.permissions = {"contents": "read"}
    messages.append(await refusal(tokens))
    fake.uninstall("acme")
    messages.append(await refusal(tokens))
    fake.down = True
    messages.append(await refusal(tokens))
    for message in messages:
        assert "ghs_" not in message and "eyJ" not in message and "PRIVATE KEY" not in message, message
    assert token.token not in repr(token) and "ghs_" not in repr(RepoToken(token.token, 1.0))
    assert "PRIVATE" not in repr(tokens)


async def test_the_installation_is_looked_up_once_per_repository(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    fake.install("acme", None)
    tokens = tokens_for(fake, http)
    first = await tokens.mint(ACME_API)
    second = await tokens.mint(GitHubRepo("Acme", "API"))  # GitHub's names ignore case
    await tokens.mint(GitHubRepo("acme", "web"))
    assert first.token != second.token
    assert [r.path for r in fake.requests_to("GET", "/installation")] == [
        "/repos/acme/api/installation", "/repos/acme/web/installation"
    ]
    assert len(fake.mint_requests()) == 3


async def test_a_reinstalled_app_is_found_again(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    fake.install("acme", ["api"])
    tokens = tokens_for(fake, http)
    await tokens.mint(ACME_API)
    fake.uninstall("acme")
    again = fake.install("acme", ["api"])  # a new installation id
    token = await tokens.mint(ACME_API)
    assert fake.tokens[-1].installation_id == again.id and fake.token_allows(token.token, "acme", "api")
    assert [r.status for r in fake.mint_requests()] == [201, 404, 201]


async def test_an_uninstalled_app_says_to_install_it(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    fake.install("acme", ["api"])
    tokens = tokens_for(fake, http)
    await tokens.mint(ACME_API)
    fake.uninstall("acme")
    assert (await refusal(tokens)).startswith("The GitHub App is not installed on acme/api")


@pytest.mark.parametrize(
    ("pem", "says"),
    [
        ("not a key", "GITHUB_APP_PRIVATE_KEY is not a PEM private key: paste the .pem file"),
        ("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", "could not be read as a PEM private key"),
        (
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode(),
            "is not an RSA key (GitHub Apps sign with RS256)",
        ),
        (
            rsa_key().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"passphrase"),
            ).decode(),
            "is an encrypted private key",
        ),
    ],
    ids=["text", "garbage", "ec", "encrypted"],
)
async def test_a_bad_key_fails_at_construction(http: httpx.AsyncClient, pem: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        GitHubAppTokens(http=http, app_id="1", private_key=pem)
    assert says in str(raised.value)
    error = raised.value  # one sentence, no chained traceback from cryptography
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


# --- the fake is a check, not a rubber stamp ---------------------------------------------------


async def test_the_fake_refuses_the_jwts_github_refuses(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    now = int(time.time())

    async def status_with(app_jwt: str) -> int:
        response = await http.get(f"{fake.base_url}/app", headers={"Authorization": f"Bearer {app_jwt}"})
        if response.status_code == 401:
            assert response.json()["documentation_url"].startswith("https://docs.github.com/")
        return response.status_code

    assert await status_with(fake.sign()) == 200
    assert await status_with(fake.sign(iss=CLIENT_ID)) == 200
    assert await status_with(fake.sign(exp=now + 1200)) == 401
    assert await status_with(fake.sign(iat=now - 300, exp=now + 400)) == 401  # exp - iat > 600
    assert await status_with(fake.sign(key=rsa_key("stranger"))) == 401
    assert await status_with(fake.sign(iss="9999")) == 401
    assert await status_with(fake.sign(iat=now - 700, exp=now - 100)) == 401
    assert await status_with(fake.sign(iat=now + 120)) == 401
    assert await status_with(fake.sign(iat=now - 60.5)) == 401  # GitHub wants integers
    assert await status_with("not-a-jwt") == 401
    assert fake.refusals == [EXP_TOO_FAR, EXP_TOO_FAR, BAD_JWT, BAD_JWT, EXPIRED, IAT_AHEAD, IAT_AHEAD, BAD_JWT]


async def test_the_fake_checks_tokens_as_a_git_server_would(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    import base64

    fake.install("acme", ["api", "web"], permissions={"contents": "read", "metadata": "read"})
    token = await tokens_for(fake, http, permissions={"contents": "read"}).mint(ACME_API)
    basic = "Basic " + base64.b64encode(f"x-access-token:{token.token}".encode()).decode()
    assert fake.basic_auth_allows(basic, "acme", "api")
    assert not fake.basic_auth_allows(basic, "acme", "api", contents="write")
    assert not fake.basic_auth_allows(basic, "acme", "web")
    assert not fake.basic_auth_allows(basic, "other", "api")
    assert not fake.basic_auth_allows(basic, "acme", "api", now=token.expires_at + 1)
    assert not fake.basic_auth_allows("Basic " + base64.b64encode(b"x-access-token:ghs_forged").decode(), "acme", "api")
    assert not fake.basic_auth_allows(f"Bearer {token.token}", "acme", "api")
    assert not fake.basic_auth_allows(None, "acme", "api")


# --- GitHubAppSettings ---------------------------------------------------------------------------

PEM = pem_of(rsa_key())


def test_app_mode_is_asked_for_by_any_of_its_variables() -> None:
    assert not GitHubAppSettings.configured({"GH_TOKEN": "x", "GITHUB_APP_ID": "  "})
    for name in ("GITHUB_APP_ID", "GITHUB_APP_CLIENT_ID", "GITHUB_APP_PRIVATE_KEY", "GITHUB_APP_PRIVATE_KEY_PATH"):
        assert GitHubAppSettings.configured({name: "x"})
    assert GitHubAppSettings.problems({}) == [("GITHUB_APP_CLIENT_ID", NOT_CONFIGURED)]


def test_a_complete_environment_reads_with_its_defaults() -> None:
    settings = GitHubAppSettings.from_env({"GITHUB_APP_ID": "4242", "GITHUB_APP_PRIVATE_KEY": PEM})
    assert settings.app_id == "4242" and settings.private_key == PEM
    assert dict(settings.permissions) == {"contents": "write", "pull_requests": "write"}
    assert settings.api_url == "https://api.github.com" and settings.server_url == "https://github.com"
    assert "PRIVATE" not in repr(settings) and "***" in repr(settings)


def test_the_client_id_is_preferred_and_urls_and_permissions_are_read() -> None:
    settings = GitHubAppSettings.from_env({
        "GITHUB_APP_ID": "4242", "GITHUB_APP_CLIENT_ID": CLIENT_ID, "GITHUB_APP_PRIVATE_KEY": PEM,
        "GITHUB_APP_PERMISSIONS": "contents:read, issues:write",
        "GITHUB_API_URL": "https://ghe.example.com/api/v3/", "GITHUB_SERVER_URL": "http://127.0.0.1:8765",
    })
    assert settings.app_id == CLIENT_ID
    assert dict(settings.permissions) == {"contents": "read", "issues": "write"}
    assert (settings.api_url, settings.server_url) == ("https://ghe.example.com/api/v3", "http://127.0.0.1:8765")


async def test_a_key_on_one_line_with_escaped_newlines_mints(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    one_line = fake.private_key_pem.strip().replace("\n", "\\n")
    assert "\n" not in one_line
    settings = GitHubAppSettings.from_env({
        "GITHUB_APP_ID": str(APP_ID), "GITHUB_APP_PRIVATE_KEY": one_line, "GITHUB_API_URL": fake.base_url,
    })
    assert settings.private_key == fake.private_key_pem
    fake.install("acme", ["api"])
    token = await settings.tokens(http).mint(ACME_API)
    assert fake.token_allows(token.token, "acme", "api", contents="write")


def test_a_key_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "app.pem"
    path.write_text(PEM)
    settings = GitHubAppSettings.from_env({"GITHUB_APP_CLIENT_ID": CLIENT_ID, "GITHUB_APP_PRIVATE_KEY_PATH": str(path)})
    assert settings.private_key == PEM


@pytest.mark.parametrize(
    ("env", "variable", "says"),
    [
        ({"GITHUB_APP_ID": "4242"}, "GITHUB_APP_PRIVATE_KEY", "GITHUB_APP_ID is set but not the GitHub App's private key: set GITHUB_APP_PRIVATE_KEY"),
        ({"GITHUB_APP_CLIENT_ID": CLIENT_ID}, "GITHUB_APP_PRIVATE_KEY", "GITHUB_APP_CLIENT_ID is set but not the GitHub App's private key"),
        ({"GITHUB_APP_PRIVATE_KEY": PEM}, "GITHUB_APP_CLIENT_ID", "GITHUB_APP_PRIVATE_KEY is set but not the GitHub App's id: set GITHUB_APP_CLIENT_ID"),
        ({"GITHUB_APP_ID": "my-app", "GITHUB_APP_PRIVATE_KEY": PEM}, "GITHUB_APP_ID", "GITHUB_APP_ID='my-app' is not the app's numeric id"),
        ({"GITHUB_APP_CLIENT_ID": "Iv23 li", "GITHUB_APP_PRIVATE_KEY": PEM}, "GITHUB_APP_CLIENT_ID", "has spaces in it"),
        ({"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY_PATH": "/nonexistent/app.pem"}, "GITHUB_APP_PRIVATE_KEY_PATH",
         "GITHUB_APP_PRIVATE_KEY_PATH=/nonexistent/app.pem cannot be read (No such file or directory)"),
        ({"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY": "ssh-rsa AAAA"}, "GITHUB_APP_PRIVATE_KEY",
         "GITHUB_APP_PRIVATE_KEY is not a PEM private key"),
        ({"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY": PEM, "GITHUB_APP_PRIVATE_KEY_PATH": "/x.pem"},
         "GITHUB_APP_PRIVATE_KEY_PATH", "Set one of GITHUB_APP_PRIVATE_KEY and GITHUB_APP_PRIVATE_KEY_PATH, not both"),
        ({"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY": PEM, "GITHUB_APP_PERMISSIONS": "contents=write"},
         "GITHUB_APP_PERMISSIONS", "GITHUB_APP_PERMISSIONS: 'contents=write' is not a permission"),
        ({"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY": PEM, "GITHUB_API_URL": "api.github.com"},
         "GITHUB_API_URL", "GITHUB_API_URL='api.github.com' must be an http(s) URL such as https://api.github.com."),
        ({"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY": PEM, "GITHUB_SERVER_URL": "ftp://example.com"},
         "GITHUB_SERVER_URL", "must be an http(s) URL such as https://github.com."),
    ],
    ids=["id-no-key", "client-id-no-key", "key-no-id", "bad-id", "spaced-client-id", "unreadable-file",
         "not-pem", "both-keys", "bad-permissions", "bad-api-url", "bad-server-url"],
)
def test_each_problem_names_its_variable_and_the_fix(env: dict[str, str], variable: str, says: str) -> None:
    problems = GitHubAppSettings.problems(env)
    assert len(problems) == 1, problems
    assert problems[0][0] == variable and says in problems[0][1], problems
    with pytest.raises(ConfigError) as raised:
        GitHubAppSettings.from_env(env)
    assert str(raised.value) == problems[0][1]


def test_every_problem_is_reported_at_once() -> None:
    env = {"GITHUB_APP_PRIVATE_KEY": "nope", "GITHUB_APP_PERMISSIONS": "all", "GITHUB_API_URL": "x"}
    problems = GitHubAppSettings.problems(env)
    assert [variable for variable, _ in problems] == [
        "GITHUB_APP_PRIVATE_KEY", "GITHUB_APP_CLIENT_ID", "GITHUB_APP_PERMISSIONS", "GITHUB_API_URL"
    ]
    with pytest.raises(ConfigError) as raised:
        GitHubAppSettings.from_env(env)
    assert str(raised.value).splitlines() == [message for _, message in problems]
