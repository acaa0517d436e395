"""Bookinfo's productpage v1: the page Istio's tasks look at.

``GET /productpage`` calls details and reviews through the mesh, each with a 3 s client timeout,
reviews up to twice (Bookinfo retries it once in application code), forwarding ``end-user`` (the
logged-in user) and ``x-request-id``. The page carries Bookinfo's markers — stars as
``glyphicon glyphicon-star`` in ``text-black-500`` (v2) or ``text-red-500`` (v3), the
``Sorry, product ... are currently unavailable for this book.`` errors — and a
``<p id="served-by">`` line naming the version of every app that answered.
"""

from __future__ import annotations

import html
import json
import re
import urllib.parse
import uuid
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

from meshroute.bookinfo.base import App, MeshReply, Request, Response, json_response, mesh_get
from meshroute.bookinfo.services import RATINGS_UNAVAILABLE

NAME = "productpage-v1"
DETAILS_HOST = "details:9080"
REVIEWS_HOST = "reviews:9080"
TIMEOUT = 3.0
REVIEWS_ATTEMPTS = 2
USER_COOKIE = "user"
DETAILS_ERROR = "Sorry, product details are currently unavailable for this book."
REVIEWS_ERROR = "Sorry, product reviews are currently unavailable for this book."
PRODUCT = {
    "id": 0,
    "title": "The Comedy of Errors",
    "descriptionHtml": "<a href='https://en.wikipedia.org/wiki/The_Comedy_of_Errors'>Wikipedia Summary</a>: "
    "The Comedy of Errors is one of William Shakespeare's early plays.",
}


def user_of(req: Request) -> str:
    """The logged-in user: the session cookie set by ``POST /login``, else an ``end-user`` header or
    a ``?u=`` query (for scripted clients); ``""`` when anonymous."""
    cookie = SimpleCookie(req.headers.get("cookie", ""))
    if USER_COOKIE in cookie and cookie[USER_COOKIE].value:
        return cookie[USER_COOKIE].value
    return req.headers.get("end-user") or req.query.get("u", "")


def outbound_headers(req: Request) -> dict[str, str]:
    """What productpage sends on its calls for ``req``: the propagated headers, ``end-user`` for the
    logged-in user, and one ``x-request-id`` for all of them."""
    headers = req.propagated()
    headers.pop("end-user", None)
    if user := user_of(req):
        headers["end-user"] = user
    headers.setdefault("x-request-id", str(uuid.uuid4()))
    return headers


def productpage_app(mesh_port: int, timeout: float = TIMEOUT, attempts: int = REVIEWS_ATTEMPTS) -> App:
    def call(headers: dict[str, str], host: str, path: str, tries: int) -> MeshReply:
        reply = MeshReply(0, b"", "not called")
        for _ in range(tries):
            reply = mesh_get(mesh_port, host, path, headers, timeout)
            if reply.status == 200:
                break
        return reply

    def app(req: Request) -> Response:
        if req.path == "/productpage":
            headers = outbound_headers(req)
            details = call(headers, DETAILS_HOST, "/details/0", 1).json()
            reviews = call(headers, REVIEWS_HOST, "/reviews/0", attempts).json()
            return Response(200, render(user_of(req), details, reviews), "text/html; charset=utf-8")
        if req.path == "/login" and req.method == "POST":
            form = dict(urllib.parse.parse_qsl(req.body.decode(errors="replace")))
            user = form.get("username", "")
            return _redirect(f"{USER_COOKIE}={urllib.parse.quote(user)}; Path=/")
        if req.path == "/logout":
            return _redirect(f"{USER_COOKIE}=; Path=/; Max-Age=0")
        if req.path.startswith("/static/"):
            return Response(200, "/* bookinfo static */\n", "text/css")
        if req.path.startswith("/api/v1/products"):
            return _api(req, lambda host, path: call(outbound_headers(req), host, path, 1))
        if req.path in ("/", "/index.html"):
            return Response(200, "<html><body><a href='/productpage'>Bookinfo</a></body></html>", "text/html")
        if req.path == "/health":
            return json_response({"status": "Product page is healthy"})
        return json_response({"error": "not found", "served_by": NAME}, 404)

    return app


def _redirect(cookie: str) -> Response:
    return Response(302, "", "text/html", [("location", "/productpage"), ("set-cookie", cookie)])


def _api(req: Request, call: Callable[[str, str], MeshReply]) -> Response:
    parts = req.path.removeprefix("/api/v1/products").strip("/").split("/")
    if parts == [""]:
        return json_response([{k: PRODUCT[k] for k in ("id", "title", "descriptionHtml")}])
    if parts[0] != "0" or len(parts) > 2:
        return json_response({"error": "Product not found"}, 404)
    if len(parts) == 1:
        return json_response(PRODUCT)
    target = {"reviews": (REVIEWS_HOST, "/reviews/0"), "ratings": ("ratings:9080", "/ratings/0")}.get(
        parts[1]
    )
    if target is None:
        return json_response({"error": "not found"}, 404)
    reply = call(*target)
    return Response(
        reply.status or 503, reply.body.decode(errors="replace") or json.dumps({"error": reply.error})
    )


def render(user: str, details: Any, reviews: Any) -> str:
    """The product page HTML for what details and reviews answered (``None``: the call failed)."""
    served = [NAME]
    parts = [f"<h2>{html.escape(str(PRODUCT['title']))}</h2>"]
    parts.append(f"<p id='user'>{html.escape(user) if user else 'sign in'}</p>")
    if isinstance(details, dict):
        served.append(str(details.get("served_by")))
        rows = "".join(
            f"<dt>{k}</dt><dd>{html.escape(str(details.get(k)))}</dd>"
            for k in ("author", "year", "publisher")
        )
        parts.append(f"<div id='details'><dl>{rows}</dl></div>")
    else:
        parts.append(
            f"<div id='details'><h4>Error fetching product details!</h4><p>{DETAILS_ERROR}</p></div>"
        )
    if isinstance(reviews, dict) and isinstance(reviews.get("reviews"), list):
        served.append(str(reviews.get("served_by")))
        if reviews.get("ratings_served_by"):
            served.append(str(reviews["ratings_served_by"]))
        parts.append("<div id='reviews'>" + "".join(_review(r) for r in reviews["reviews"]) + "</div>")
    else:
        parts.append(
            f"<div id='reviews'><h4>Error fetching product reviews!</h4><p>{REVIEWS_ERROR}</p></div>"
        )
    parts.append(f"<p id='served-by'>{' '.join(html.escape(s) for s in served)}</p>")
    body = "\n".join(parts)
    head = "<!DOCTYPE html>\n<html><head><title>Simple Bookstore App</title></head><body>"
    return f"{head}\n{body}\n</body></html>\n"


def _review(review: dict[str, Any]) -> str:
    reviewer = html.escape(str(review.get("reviewer")))
    text = f"<p>{html.escape(str(review.get('text')))}</p><small>{reviewer}</small>"
    rating = review.get("rating")
    if isinstance(rating, dict) and isinstance(rating.get("stars"), int):
        full, color = rating["stars"], html.escape(str(rating.get("color")))
        glyphs = ["<span id='glyphicon glyphicon-star'></span>"] * full
        glyphs += ["<span id='glyphicon glyphicon-star-empty'></span>"] * (5 - full)
        text += f"<div class='text-{color}-500'>{''.join(glyphs)}</div>"
    elif isinstance(rating, dict):
        text += f"<p class='rating-error'>{html.escape(str(rating.get('error', RATINGS_UNAVAILABLE)))}</p>"
    return f"<blockquote>{text}</blockquote>"


# === reading a rendered page (demo and tests) ===

_SERVED_BY = re.compile(r"<p id='served-by'>([^<]*)</p>")
_STARS = re.compile(r"<div class='text-(\w+)-500'><span id='glyphicon glyphicon-star'>")


def served_by(page: str) -> list[str]:
    """The ``app-version`` of every app that answered for this page, productpage first.

    >>> served_by(render("", None, None))
    ['productpage-v1']
    """
    found = _SERVED_BY.search(page)
    return found.group(1).split() if found else []


def reviews_version(page: str) -> str:
    """Which reviews version the page shows (``"none"`` when the reviews call failed).

    >>> reviews_version(render("", None, {"served_by": "reviews-v1", "reviews": []}))
    'reviews-v1'
    """
    return next((s for s in served_by(page) if s.startswith("reviews-")), "none")


def star_colors(page: str) -> set[str]:
    """The colours of the star ratings on the page: ``{"black"}`` for reviews v2, ``{"red"}`` for v3.

    >>> star_colors(render("", None, {"served_by": "reviews-v3", "reviews": [
    ...     {"rating": {"stars": 4, "color": "red"}}]}))
    {'red'}
    """
    return set(_STARS.findall(page))
