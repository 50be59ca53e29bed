"""The service's request rules as pure functions: Host, Origin, Content-Type, JSON depth."""

from __future__ import annotations

import json

import pytest

from stream.fleet.shield import check_request, host_allowed, json_depth, parse_json, split_host

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8770", ("127.0.0.1", "8770")),
        ("LocalHost", ("localhost", "")),
        ("[::1]:80", ("::1", "80")),
        ("proxy.example.", ("proxy.example", "")),
        ("evil.example:x", None),
        ("a:1:2", None),
        ("user@host", None),
        ("[::1", None),
        ("", None),
    ],
)
def test_host_headers_are_parsed_strictly(value, expected):
    assert split_host(value) == expected


@pytest.mark.parametrize(
    ("name", "bound", "names", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1", (), True),
        ("localhost", "127.0.0.1", (), True),
        ("::1", "127.0.0.1", (), True),
        ("127.0.0.2", "127.0.0.1", (), True),  # any loopback address
        ("evil.example", "127.0.0.1", (), False),  # DNS rebinding: a name that points here
        ("proxy.example", "127.0.0.1", ("proxy.example",), True),
        ("10.0.0.5", "127.0.0.1", (), False),
        ("10.0.0.5", "0.0.0.0", (), True),  # bound everywhere: an IP literal cannot be rebound
        ("cams.local", "0.0.0.0", (), False),
        ("10.0.0.5", "10.0.0.5", (), True),
    ],
)
def test_host_names_that_name_this_service(name, bound, names, allowed):
    assert host_allowed(name, bound, names) is allowed


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        ("GET", {"host": "127.0.0.1:8770"}, None),
        ("GET", {"host": "evil.example:8770"}, 421),
        ("GET", {}, 421),
        ("POST", {"host": "evil.example", **JSON}, 421),
        ("POST", {"host": "127.0.0.1:8770", "content-type": "text/plain"}, 415),
        ("POST", {"host": "127.0.0.1:8770"}, 415),
        ("DELETE", {"host": "127.0.0.1:8770", "content-type": "application/x-www-form-urlencoded"}, 415),
        ("POST", {"host": "127.0.0.1:8770", **JSON}, None),
        ("POST", {"host": "127.0.0.1:8770", "content-type": "application/json; charset=utf-8"}, None),
        ("POST", {"host": "127.0.0.1:8770", **JSON, "origin": "http://127.0.0.1:8770"}, None),
        ("POST", {"host": "127.0.0.1:8770", **JSON, "origin": "http://evil.example"}, 403),
        ("POST", {"host": "127.0.0.1:8770", **JSON, "origin": "http://127.0.0.1:9999"}, 403),
        ("POST", {"host": "127.0.0.1:8770", **JSON, "origin": "null"}, 403),
        ("POST", {"host": "127.0.0.1:8770", **JSON, "sec-fetch-site": "cross-site"}, 403),
        ("POST", {"host": "127.0.0.1:8770", **JSON, "sec-fetch-site": "same-origin"}, None),
        ("POST", {"host": "proxy.example", **JSON, "origin": "https://proxy.example"}, None),  # TLS at the proxy
    ],
)
def test_requests_refused_or_let_through(method, headers, status):
    refusal = check_request(method, headers, "127.0.0.1", ("proxy.example",))
    assert (refusal.status if refusal else None) == status


def test_json_depth_counts_brackets_outside_strings():
    assert json_depth('{"a": [1, {"b": 2}]}') == 3
    assert json_depth('{"a": "[[[[{{{{"}') == 1
    assert json_depth(r'{"a": "\"[[["}') == 1
    assert json_depth("[" * 100000 + "]" * 100000) == 100000  # no recursion: no RecursionError


def test_parse_json_refuses_what_python_would_take():
    assert parse_json(b'{"every": 2}', 4) == {"every": 2}
    with pytest.raises(ValueError, match=r"limits\.json_depth"):
        parse_json(json.dumps({"a": {"b": {"c": {"d": 1}}}}).encode(), 3)
    for constant in (b'{"every": Infinity}', b'{"every": NaN}', b'{"every": -Infinity}'):
        with pytest.raises(ValueError, match="finite numbers only"):
            parse_json(constant, 8)
    with pytest.raises(ValueError, match="not JSON"):
        parse_json(b"name=door", 8)
    with pytest.raises(ValueError, match="not UTF-8"):
        parse_json(b"\xff\xfe", 8)
