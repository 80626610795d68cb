"""Who may use the gateway's control API, and which requests a browser could forge.

- A key: with an admin key (`RISKSERVE_PLATFORM_ADMIN_KEY`) set, changes (apply,
  patch, delete) need it; without one, the serving key guards them. Reading routes
  (status, traffic, `/metrics`) take either key. With no key at all, only loopback
  clients are answered (and the daemon refuses a non-loopback address).
- A web page in the operator's browser can send requests to 127.0.0.1 (as a "simple"
  cross-site request, or from its own name rebound to 127.0.0.1). So a control request
  is refused when its `Host` is not a name the gateway serves, when it carries a foreign
  `Origin`, or when a body comes with a content type a page can send without asking
  (`text/plain`, forms): only `application/json` and YAML are accepted.
- Every refusal is decided before the route is looked up: a caller without the key
  learns nothing about which InferenceServices exist.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from riskserve.localplatform.settings import PlatformSettings, is_loopback

BODY_TYPES = {
    b"application/json",
    b"application/yaml",
    b"application/x-yaml",
    b"text/yaml",
    b"text/x-yaml",
}


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


def presented_key(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The key in `x-api-key` or `Authorization: Bearer`, if any."""
    for name, value in headers:
        if name == b"x-api-key":
            return value.strip()
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].strip()
    return None


def key_matches(presented: bytes | None, key: bytes | None) -> bool:
    return (
        presented is not None
        and key is not None
        and hmac.compare_digest(presented, key)
    )


class ControlGuard:
    def __init__(self, settings: PlatformSettings, serving_key: str | None) -> None:
        admin = settings.platform_admin_key
        admin_text = admin.get_secret_value() if admin is not None else ""
        self.admin_key = admin_text.encode() if admin_text else None
        self.serving_key = serving_key.encode() if serving_key else None
        self.hosts = {"localhost", "127.0.0.1", "::1", settings.host.strip("[]")}
        self.hosts |= {
            h.strip().lower().strip("[]") for h in settings.gateway_allowed_hosts
        }

    @property
    def keyed(self) -> bool:
        return self.admin_key is not None or self.serving_key is not None

    def check(self, scope: dict, changes: bool) -> Refusal | None:
        """Why this control request is refused, or None. `changes` is True for the
        routes that change what runs (they need the admin key when one is set)."""
        headers = scope["headers"]
        host = header(headers, b"host")
        if host is None or _hostname(host) not in self.hosts:
            return Refusal(403, "this Host is not served by the control API")
        origin = header(headers, b"origin")
        if origin is not None and urlsplit(origin.decode("latin-1")).netloc.lower() != (
            host.decode("latin-1").strip().lower()
        ):
            return Refusal(403, "cross-origin requests are refused by the control API")
        if header(headers, b"sec-fetch-site") in (b"cross-site", b"same-site"):
            return Refusal(403, "cross-origin requests are refused by the control API")
        if self.keyed:
            presented = presented_key(headers)
            allowed = key_matches(presented, self.admin_key or self.serving_key)
            if not changes:
                allowed = allowed or key_matches(presented, self.serving_key)
            if not allowed:
                return Refusal(401, "missing or invalid API key")
        else:
            client = scope.get("client")
            if client is None or not is_loopback(client[0]):
                return Refusal(403, "the control API answers loopback clients only")
        if scope["method"] in ("POST", "PUT", "PATCH"):
            ctype = (header(headers, b"content-type") or b"").split(b";")[0].strip()
            if ctype.lower() not in BODY_TYPES:
                return Refusal(
                    415,
                    "control requests take Content-Type application/json or "
                    "application/yaml",
                )
        return None


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _hostname(netloc: bytes) -> str:
    """`host[:port]` or `[v6]:port` -> the lower-case host."""
    text = netloc.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text
