"""Reading ext_proc request headers into route() arguments."""

from __future__ import annotations

import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from meshroute.extproc.request import request_fields, split_authority

from .conftest import headers_request


def test_request_fields_reads_pseudo_headers_and_keeps_the_rest_in_order() -> None:
    req = headers_request(
        "Reviews.Default:9080", "/a?b=1", "POST", [("b", "2"), ("a", "1"), ("b", "3")], "https"
    )
    f = request_fields(req.request_headers)
    assert (f.host, f.port, f.path, f.method, f.scheme) == (
        "reviews.default",
        9080,
        "/a?b=1",
        "POST",
        "https",
    )
    assert f.headers == [("b", "2"), ("a", "1"), ("b", "3")]


def test_request_fields_value_fallback_and_non_utf8() -> None:
    msg = pb.HttpHeaders()
    msg.headers.headers.add(key=":authority", value="ratings")
    msg.headers.headers.add(key="x-latin", raw_value=b"caf\xe9")
    f = request_fields(msg)
    assert f.host == "ratings" and f.port is None
    assert f.headers == [("x-latin", "café")]


@pytest.mark.parametrize(
    ("authority", "expected"),
    [("a", ("a", None)), ("a:80", ("a", 80)), ("[::1]", ("[::1]", None)), ("[::1]:8", ("[::1]", 8)),
     ("a:b", ("a:b", None)), ("", ("", None))],
)  # fmt: skip
def test_split_authority(authority: str, expected: tuple[str, int | None]) -> None:
    assert split_authority(authority) == expected
