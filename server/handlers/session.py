"""`/_session`: who the request is (GET), cookie login (POST) and logout (DELETE), as CouchDB."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from werkzeug.wrappers import Response

from .. import auth, sessions
from ..errors import BadRequest
from ..wrappers import SetteeRequest, json_response

if TYPE_CHECKING:
    from ..app import Settee

HANDLERS = ["cookie", "default"]


def session(app: Settee, request: SetteeRequest) -> Response:
    """`GET/HEAD/POST/DELETE /_session`."""
    if request.method == "POST":
        return login(app, request)
    if request.method == "DELETE":
        response = json_response({"ok": True})
        response.headers["Set-Cookie"] = sessions.clear_cookie_header(app.settings)
        return _redirect(request, response)
    user = request.user_ctx
    if request.args.get("basic") == "true" and user.name is None and not user.is_admin:
        raise auth.Unauthorized("Authentication required.")
    info: dict[str, Any] = {"authentication_handlers": HANDLERS, "authentication_db": "_users"}
    if user.handler is not None:
        info["authenticated"] = user.handler
    return json_response({"ok": True, "userCtx": {"name": user.name, "roles": list(user.roles)},
                          "info": info})


def login(app: Settee, request: SetteeRequest) -> Response:
    """`POST /_session` with `name` and `password` (form or JSON): a cookie, or 401."""
    name, password = credentials(request)
    address = request.environ.get("REMOTE_ADDR") or ""
    principal = auth.state(app).login(name, password, address)
    response = json_response({"ok": True, "name": principal.name, "roles": list(principal.roles)})
    response.headers["Set-Cookie"] = auth.issue_cookie(app, principal)
    return _redirect(request, response)


def credentials(request: SetteeRequest) -> tuple[str, str]:
    """`name` and `password` from a form or JSON body ("" where missing, as CouchDB)."""
    mimetype = request.mimetype
    fields: dict[str, Any] = {}
    if mimetype == "application/x-www-form-urlencoded":
        try:
            text = request.body_bytes().decode()
        except UnicodeDecodeError:
            raise BadRequest("The form must be UTF-8") from None
        fields = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
    elif mimetype == "application/json":
        body = request.json_body()
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object")
        fields = body
    name, password = fields.get("name", ""), fields.get("password", "")
    if not isinstance(name, str) or not isinstance(password, str):
        raise BadRequest("`name` and `password` must be strings")
    return name, password


def _redirect(request: SetteeRequest, response: Response) -> Response:
    """`?next=/path` turns a success into a 302 there (same-site paths only: no open redirect)."""
    target = request.args.get("next")
    if target and target.startswith("/") and not target.startswith(("//", "/\\")) \
            and not any(c in target for c in "\r\n"):
        response.status_code = 302
        response.headers["Location"] = request.host_url.rstrip("/") + target
    return response
