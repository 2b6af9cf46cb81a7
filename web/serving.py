"""Serving the Flask apps with waitress, and stopping them cleanly.

waitress's ``server.close()`` from another thread races with the server's own
loop thread (which may be inside ``select()`` on those sockets: EBADF).
:meth:`WebServer.stop` finishes the worker threads, then closes every socket
on the loop thread itself, and closes the trigger pipe only after the loop
has ended.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("bibbox.web")

# waitress's loop wakes every asyncore_loop_timeout seconds (default 1) only
# to close idle keep-alive connections after channel_timeout; every request,
# response and stop wakes it through its trigger.  An idle locker should not
# wake once a second for that: an idle connection is closed up to this much
# later instead.
LOOP_TIMEOUT_S = 300


def proxy_settings(web):
    """waitress's settings for the reverse proxy of config section ``web``:
    requests from ``web.trusted_proxy`` carry the client's address and scheme
    in the ``web.trusted_proxy_headers``, which waitress moves into
    ``REMOTE_ADDR`` and ``wsgi.url_scheme`` (the last hop only); from any
    other sender waitress drops those headers."""
    if not web.trusted_proxy:
        return {}
    return {"trusted_proxy": web.trusted_proxy, "trusted_proxy_count": 1,
            "trusted_proxy_headers": set(h.lower() for h in web.trusted_proxy_headers),
            "clear_untrusted_proxy_headers": True}


class WebServer:
    """One waitress server on ``host:port`` (0 = any free port), run on a
    daemon thread from :meth:`start` to :meth:`stop`.  ``proxy`` is
    :func:`proxy_settings` (none: X-Forwarded-* headers are dropped)."""

    def __init__(self, app, host, port, threads=8, proxy=None):
        from waitress import create_server
        try:
            self.server = create_server(app, host=host, port=port, threads=threads,
                                        ident="bibbox", channel_timeout=60,
                                        asyncore_loop_timeout=LOOP_TIMEOUT_S,
                                        **(proxy or {}))
        except OSError as exc:   # a port in use: say which one
            raise OSError(exc.errno, f"cannot serve on {host}:{port}: "
                                     f"{exc.strerror or exc}") from None
        self.host = host
        self.thread = threading.Thread(target=self.server.run, name=f"web-{self.port}",
                                       daemon=True)

    @property
    def port(self):
        return int(self.server.effective_port)

    def start(self):
        self.thread.start()
        log.info("serving http://%s:%d/", self.host, self.port)

    def stop(self, timeout=5.0):
        from waitress import wasyncore
        server = self.server

        def close_in_loop():
            for obj in list(server._map.values()):
                if obj is server.trigger:
                    obj.del_channel()
                elif obj is server:
                    wasyncore.dispatcher.close(obj)  # BaseWSGIServer.close closes the trigger
                else:
                    obj.close()

        server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)
        if self.thread.is_alive():
            server.trigger.pull_trigger(close_in_loop)
            self.thread.join(timeout)
        server.trigger.close()
