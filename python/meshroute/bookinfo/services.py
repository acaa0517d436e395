"""Bookinfo's back ends: details v1, reviews v1/v2/v3 and ratings v1.

reviews v2 and v3 call ratings through the mesh (client timeouts 10 s and 2.5 s, as in Bookinfo's
Java reviews service) and forward ``end-user``; v1 never calls ratings. A failed ratings call turns
into ``Ratings service is currently unavailable`` on each review, and reviews still answers 200.
"""

from __future__ import annotations

from typing import Any

from meshroute.bookinfo.base import App, Request, Response, json_response, mesh_get, not_found

RATINGS_HOST = "ratings:9080"
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"
# version -> (calls ratings with this client timeout in seconds or never, star colour)
REVIEWS_VERSIONS: dict[str, tuple[float | None, str]] = {
    "v1": (None, ""),
    "v2": (10.0, "black"),
    "v3": (2.5, "red"),
}
REVIEWS = (
    (
        "Reviewer1",
        "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
    ),
    (
        "Reviewer2",
        "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays "
        "by Shakespeare.",
    ),
)


def _product_id(req: Request, prefix: str) -> str | None:
    """``/details/0`` -> ``"0"``; anything else (wrong prefix, nested path, non-number) -> None."""
    rest = req.path.removeprefix(prefix)
    return rest if rest != req.path and rest.isdigit() else None


def details_app(name: str = "details-v1") -> App:
    def app(req: Request) -> Response:
        pid = _product_id(req, "/details/")
        if req.path == "/health":
            return json_response({"status": "Details is healthy"})
        if pid is None:
            return not_found(name)
        return json_response(
            {
                "id": int(pid),
                "author": "William Shakespeare",
                "year": 1595,
                "type": "paperback",
                "pages": 200,
                "publisher": "PublisherA",
                "language": "English",
                "ISBN-10": "1234567890",
                "ISBN-13": "123-1234567890",
                "served_by": name,
            }
        )

    return app


def ratings_app(name: str = "ratings-v1") -> App:
    def app(req: Request) -> Response:
        pid = _product_id(req, "/ratings/")
        if req.path == "/health":
            return json_response({"status": "Ratings is healthy"})
        if pid is None:
            return not_found(name)
        return json_response({"id": int(pid), "ratings": {"Reviewer1": 5, "Reviewer2": 4}, "served_by": name})

    return app


def reviews_app(version: str, mesh_port: int, ratings_timeout: float | None = None) -> App:
    """reviews ``version``; ``ratings_timeout`` overrides the version's client timeout (tests)."""
    default_timeout, color = REVIEWS_VERSIONS[version]
    timeout = (
        ratings_timeout if ratings_timeout is not None and default_timeout is not None else default_timeout
    )
    name = f"reviews-{version}"

    def app(req: Request) -> Response:
        pid = _product_id(req, "/reviews/")
        if req.path == "/health":
            return json_response({"status": "Reviews is healthy"})
        if pid is None:
            return not_found(name)
        body: dict[str, Any] = {"id": pid, "podname": name, "served_by": name, "ratings_served_by": None}
        stars: dict[str, Any] = {}
        if timeout is not None:
            reply = mesh_get(mesh_port, RATINGS_HOST, f"/ratings/{pid}", req.propagated(), timeout)
            data = reply.json()
            if isinstance(data, dict) and isinstance(data.get("ratings"), dict):
                stars = data["ratings"]
                body["ratings_served_by"] = data.get("served_by")
            else:
                body["ratings_error"] = reply.error or f"HTTP {reply.status}"
        body["reviews"] = [
            _review(reviewer, text, timeout, stars.get(reviewer), color) for reviewer, text in REVIEWS
        ]
        return json_response(body)

    return app


def _review(reviewer: str, text: str, timeout: float | None, stars: Any, color: str) -> dict[str, Any]:
    review: dict[str, Any] = {"reviewer": reviewer, "text": text}
    if timeout is not None:
        if isinstance(stars, int):
            review["rating"] = {"stars": stars, "color": color}
        else:
            review["rating"] = {"error": RATINGS_UNAVAILABLE}
    return review
