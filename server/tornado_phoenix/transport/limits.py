"""Connection limits, checked before the upgrade: TP_MAX_CONNECTIONS (HTTP 503) and TP_MAX_CONNECTIONS_PER_IP
(HTTP 429). The counts are of open WebSocket connections; /health shows them:

    GET /health -> {..., "connections": 9998, "limits": {"max_connections": 10000, "max_connections_per_ip": 1000,
                    "client_addresses": 12, "refused_total": 0, "refused_per_ip": 3}}
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConnectionLimits"]


class ConnectionLimits:
    def __init__(self, max_connections: int, max_per_ip: int) -> None:
        self.max_connections = max_connections  # 0: no limit
        self.max_per_ip = max_per_ip
        self.total = 0
        self.per_ip: dict[str, int] = {}
        self.refused_total = 0
        self.refused_per_ip = 0

    def refusal(self, ip: str) -> tuple[int, str] | None:
        """(HTTP status, why) when a new connection from `ip` would exceed a limit, else None."""
        if self.max_connections and self.total >= self.max_connections:
            self.refused_total += 1
            return 503, f"{self.total} connections open, TP_MAX_CONNECTIONS={self.max_connections}"
        if self.max_per_ip and self.per_ip.get(ip, 0) >= self.max_per_ip:
            self.refused_per_ip += 1
            return 429, f"{self.per_ip[ip]} connections open from this address, " \
                        f"TP_MAX_CONNECTIONS_PER_IP={self.max_per_ip}"
        return None

    def opened(self, ip: str) -> None:
        self.total += 1
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1

    def closed(self, ip: str) -> None:
        self.total -= 1
        left = self.per_ip.get(ip, 0) - 1
        if left > 0:
            self.per_ip[ip] = left
        else:
            self.per_ip.pop(ip, None)

    def snapshot(self) -> dict[str, Any]:
        return {
            "max_connections": self.max_connections,
            "max_connections_per_ip": self.max_per_ip,
            "client_addresses": len(self.per_ip),
            "refused_total": self.refused_total,
            "refused_per_ip": self.refused_per_ip,
        }
