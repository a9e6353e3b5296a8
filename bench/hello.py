"""The ceiling: a werkzeug hello-world that answers every request with `{"ok":true}` via orjson.

It does the least a werkzeug app on gunicorn can do (parse the request, serialise a tiny JSON body,
send it), so its requests per second under the same gunicorn settings and the same client are the
most settee could reach on this machine; `run.py` divides settee's figures by it.
"""

from __future__ import annotations

import orjson
from werkzeug.wrappers import Request, Response


@Request.application
def app(request: Request) -> Response:
    """Answer any method and path with `{"ok":true}`."""
    return Response(orjson.dumps({"ok": True}), content_type="application/json")
