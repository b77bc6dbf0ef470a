"""Tornado handlers that move bytes between sockets and PhoenixSocket; no protocol logic lives here."""
