"""Asking a running daemon for its status over its loopback HTTP port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def fetch_status(url, timeout=5.0):
    """GET ``<url>/api/status`` and return its JSON; OSError if nothing answers."""
    request = urllib.request.Request(url.rstrip("/") + "/api/status",
                                     headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        try:
            return json.loads(exc.read().decode("utf-8"))
        except ValueError:
            raise OSError(f"HTTP {exc.code}") from None
    except ValueError as exc:
        raise OSError(f"not a bibbox answer ({exc})") from None
