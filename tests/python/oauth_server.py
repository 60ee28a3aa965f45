"""A Streamable HTTP MCP server that requires OAuth, built with the official Python SDK's
authorization support (mcp 2.3.0), for toolgate's sign-in tests.

Usage: oauth_server.py LOG

One process is both the authorization server (the SDK's routes: metadata, dynamic
registration, authorize, token, revoke) and the resource server (`/mcp`, which needs a bearer
token issued for it, and its protected-resource metadata). The authorize step approves at once,
so a test's "browser" only follows the redirect. Binds 127.0.0.1 on a free port and prints the
port on its first line once it listens.

Knobs for the tests, with no clock: `POST /control/expire` forgets every access token (the next
request gets 401 and the client must refresh); `POST /control/revoke` forgets every access and
refresh token (the refresh fails and the client must sign in again). Every HTTP request is
logged to LOG as one JSON line: method, path, whether it carried a bearer token, the grant type
of a token request, and the tool of a `tools/call`. The tokens themselves are never logged.
"""
import json
import secrets
import socket
import sys
import time
from urllib.parse import parse_qs

import anyio
import uvicorn

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    RefreshToken,
    construct_redirect_uri,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.mcpserver import MCPServer


class Provider:
    def __init__(self):
        self.clients = {}
        self.codes = {}
        self.access = {}
        self.refresh = {}

    async def get_client(self, client_id):
        return self.clients.get(client_id)

    async def register_client(self, client_info):
        self.clients[client_info.client_id] = client_info

    async def authorize(self, client, params):
        code = secrets.token_urlsafe(24)
        self.codes[code] = AuthorizationCode(
            code=code,
            scopes=params.scopes or ["mcp"],
            expires_at=time.time() + 300,
            client_id=client.client_id,
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource,
        )
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state)

    async def load_authorization_code(self, client, code):
        found = self.codes.get(code)
        return found if found and found.client_id == client.client_id else None

    def issue(self, client_id, scopes, resource):
        access = "at-" + secrets.token_urlsafe(24)
        refresh = "rt-" + secrets.token_urlsafe(24)
        self.access[access] = AccessToken(
            token=access, client_id=client_id, scopes=scopes, expires_at=int(time.time()) + 3600, resource=resource
        )
        self.refresh[refresh] = RefreshToken(token=refresh, client_id=client_id, scopes=scopes, resource=resource)
        from mcp.shared.auth import OAuthToken

        return OAuthToken(access_token=access, expires_in=3600, scope=" ".join(scopes), refresh_token=refresh)

    async def exchange_authorization_code(self, client, code):
        self.codes.pop(code.code, None)
        return self.issue(client.client_id, code.scopes, code.resource)

    async def load_refresh_token(self, client, refresh_token):
        found = self.refresh.get(refresh_token)
        return found if found and found.client_id == client.client_id else None

    async def exchange_refresh_token(self, client, refresh_token, scopes):
        # Rotated, as OAuth 2.1 asks for public clients.
        self.refresh.pop(refresh_token.token, None)
        return self.issue(client.client_id, scopes or refresh_token.scopes, refresh_token.resource)

    async def load_access_token(self, token):
        return self.access.get(token)

    async def revoke_token(self, token):
        self.access.pop(token.token, None)
        self.refresh.pop(token.token, None)


def logging_app(app, log_path, provider):
    async def logged(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path = scope["path"]
        entry = {
            "http": scope["method"],
            "path": path,
            "bearer": headers.get("authorization", "").startswith("Bearer "),
        }
        if path == "/token":
            form = parse_qs(body.decode())
            entry["grant_type"] = (form.get("grant_type") or [None])[0]
            entry["resource"] = (form.get("resource") or [None])[0]
        elif path == "/mcp" and body:
            try:
                parsed = json.loads(body)
                entry["method"] = parsed.get("method")
                entry["tool"] = (parsed.get("params") or {}).get("name")
            except ValueError:
                pass
        with open(log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        if path in ("/control/expire", "/control/revoke"):
            provider.access.clear()
            if path == "/control/revoke":
                provider.refresh.clear()
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await app(scope, replay, send)

    return logged


def main():
    log_path = sys.argv[1]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    provider = Provider()
    server = MCPServer(
        "toolgate-test-oauth-server",
        auth_server_provider=provider,
        auth=AuthSettings(
            issuer_url=base,
            resource_server_url=f"{base}/mcp",
            validate_token_resource=True,
            required_scopes=["mcp"],
            client_registration_options=ClientRegistrationOptions(
                enabled=True, valid_scopes=["mcp"], default_scopes=["mcp"]
            ),
            revocation_options=RevocationOptions(enabled=True),
        ),
    )

    @server.tool()
    def write_marker(path: str) -> str:
        """Write a marker file (the side effect tests watch for)."""
        with open(path, "a") as f:
            f.write("written\n")
        return "written"

    app = server.streamable_http_app()
    print(port, flush=True)
    config = uvicorn.Config(logging_app(app, log_path, provider), log_level="warning", lifespan="on")
    anyio.run(uvicorn.Server(config).serve, [sock])


if __name__ == "__main__":
    main()
