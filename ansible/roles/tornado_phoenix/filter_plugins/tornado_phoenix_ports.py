"""Port choice for the tornado_phoenix role, as pure functions so they can be unit-tested without a host.

The rules (in order):
  1. an explicit port wins, unless something other than this app holds it (then the play fails, naming it);
  2. the port recorded by the last deploy (the local fact) is kept if it is free or held by this app, and it is
     still allowed (inside the range, not excluded): redeploys never drift;
  3. otherwise the first port of the range on which nothing listens and which no other container publishes,
     never one of the excluded ports.

"Held by this app" means published by this app's own container. Its port shows up as a listener (docker-proxy)
and as a container port binding, and must not count as taken, or every redeploy would move to a new port.
Ports that a container publishes but that no socket shows (stopped containers, userland-proxy disabled) count
as taken: starting that container later would fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

try:  # Imported by Ansible as a filter plugin, and by the unit tests without Ansible's error type.
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - ansible is in the dev venv, but the logic must not depend on it
    AnsibleFilterError = ValueError  # type: ignore[assignment,misc]


class PortChoiceError(AnsibleFilterError):
    """No acceptable port: the message names the cause and the fix."""


def parse_ss_listening(text: str) -> list[int]:
    """Ports with a TCP listener on any address, from `ss -Htln` (no header) output.

    Lines look like `LISTEN 0 4096 0.0.0.0:4000 0.0.0.0:*`, `LISTEN 0 128 [::]:22 [::]:*`,
    `LISTEN 0 4096 127.0.0.53%lo:53 0.0.0.0:*` or `LISTEN 0 5 *:8001 *:*`. A listener on any address blocks
    a wildcard bind of the same port, so the address does not matter.
    """
    ports: set[int] = set()
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        # With -H the columns are State Recv-Q Send-Q Local Peer; without -n/-t other layouts exist,
        # so find the first field that looks like addr:port after the numeric queue sizes.
        local = fields[3] if fields[0].isalpha() else fields[2]
        _, sep, port = local.rpartition(":")
        if sep and port.isdigit():
            ports.add(int(port))
    return sorted(ports)


def _tcp_host_ports(bindings: object) -> list[int]:
    ports: set[int] = set()
    for spec, binds in (bindings if isinstance(bindings, dict) else {}).items():
        if not str(spec).endswith("/tcp"):
            continue
        for bind in binds or []:
            host_port = str((bind or {}).get("HostPort") or "")
            if host_port.isdigit():
                ports.add(int(host_port))
    return sorted(ports)


def parse_published_ports(text: str) -> dict[str, list[int]]:
    """Host TCP ports bound by each container (running or not), keyed by container name.

    Accepts either the JSON array of `docker inspect <every container>` or lines of
    `docker inspect --format '{{.Name}}|{{json .HostConfig.PortBindings}}'`.
    """
    text = text or ""
    result: dict[str, list[int]] = {}
    if text.lstrip().startswith("["):
        for container in json.loads(text):
            name = str(container.get("Name") or container.get("Id") or "").lstrip("/")
            result[name] = _tcp_host_ports((container.get("HostConfig") or {}).get("PortBindings"))
        return result
    for line in text.splitlines():
        name, sep, raw = line.strip().partition("|")
        if not sep:
            continue
        try:
            bindings = json.loads(raw) if raw.strip() else None
        except ValueError:
            bindings = None
        result[name.lstrip("/")] = _tcp_host_ports(bindings)
    return result


def parse_sections(text: str) -> dict[str, str]:
    """Split the output of the role's one-round-trip host survey (`@@name` header lines) into sections."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in (text or "").splitlines():
        if line.startswith("@@"):
            current = line[2:].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return {name: "\n".join(lines) for name, lines in sections.items()}


def parse_image_ids(text: str) -> dict[str, str]:
    """`repo:tag image-id` lines (docker image ls --no-trunc --format) to {repo:tag: id}, without <none> tags."""
    result: dict[str, str] = {}
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) == 2 and not fields[0].endswith(":<none>"):
            result[fields[0]] = fields[1]
    return result


def running_image(containers_json: str, container: str) -> str:
    """Image ID of the named container if it is running, else ''."""
    for item in json.loads(containers_json or "[]"):
        if str(item.get("Name", "")).lstrip("/") == container and (item.get("State") or {}).get("Running"):
            return str(item.get("Image") or "")
    return ""


def images_to_ship(wanted: dict[str, str], *host: dict[str, str]) -> list[dict[str, str]]:
    """The images of `wanted` ({repo:tag: id} built on the control machine) that the host lacks or has under
    another ID, as [{'key': repo:tag, 'value': id}] in `wanted`'s order; `host` are {repo:tag: id} maps."""
    present: dict[str, str] = {}
    for images in host:
        present.update(images or {})
    return [{"key": name, "value": image_id} for name, image_id in (wanted or {}).items()
            if present.get(name) != image_id]


def _as_port(value: object) -> int | None:
    """0, '', None and 'auto' mean "not set"; anything else must be a valid TCP port."""
    if value is None or value == "" or str(value).strip().lower() == "auto":
        return None
    try:
        port = int(str(value).strip())
    except ValueError as exc:
        raise PortChoiceError(f"port {value!r} is not a number: set it to an integer 1-65535 or 0 for automatic") from exc
    if port == 0:
        return None
    if not 1 <= port <= 65535:
        raise PortChoiceError(f"port {port} is outside 1-65535: set a valid TCP port or 0 for automatic")
    return port


def choose_port(
    listening: Iterable[int],
    published: Mapping[str, Iterable[int]],
    *,
    container: str,
    explicit: object = None,
    sticky: object = None,
    range_start: int = 4000,
    range_end: int = 4099,
    exclude: Iterable[int] = (3001, 8001),
) -> dict[str, object]:
    """Pick the app's host port; returns {'port': int, 'reason': str}. Raises PortChoiceError when none fits."""
    range_start, range_end = int(range_start), int(range_end)
    if not 1 <= range_start <= range_end <= 65535:
        raise PortChoiceError(
            f"port range {range_start}-{range_end} is empty or invalid: "
            "set tornado_phoenix_port_range_start <= tornado_phoenix_port_range_end within 1-65535"
        )
    excluded = {int(p) for p in exclude or ()}
    own = {int(p) for p in published.get(container, ())}
    others_published = {int(p) for name, ports in published.items() if name != container for p in ports}
    # Our own container's listener (docker-proxy) is not "taken"; anything else on the port is.
    taken = ({int(p) for p in listening} - own) | others_published

    explicit_port = _as_port(explicit)
    if explicit_port is not None:
        if explicit_port in taken:
            raise PortChoiceError(
                f"app_port={explicit_port} is already in use on the host by something other than "
                f"container '{container}' (a listener or another container's published port): "
                "free it, choose another app_port, or leave app_port unset for automatic choice"
            )
        return {"port": explicit_port, "reason": "explicit app_port"}

    sticky_port = _as_port(sticky)
    if sticky_port is not None:
        allowed = range_start <= sticky_port <= range_end and sticky_port not in excluded
        if allowed and sticky_port in own:
            return {"port": sticky_port, "reason": "kept: the port this app already publishes"}
        if allowed and sticky_port not in taken:
            return {"port": sticky_port, "reason": "kept: the port recorded by the last deploy is free"}

    for port in range(range_start, range_end + 1):
        if port in excluded or port in taken:
            continue
        if sticky_port is None:
            reason = f"first free port in {range_start}-{range_end}"
        elif sticky_port in excluded or not range_start <= sticky_port <= range_end:
            reason = f"previous port {sticky_port} is no longer allowed; first free port in {range_start}-{range_end}"
        else:
            reason = f"previous port {sticky_port} is taken by something else; first free port in {range_start}-{range_end}"
        return {"port": port, "reason": reason}

    raise PortChoiceError(
        f"no free port in {range_start}-{range_end}: every port is listening, published by a container, or "
        f"excluded ({sorted(excluded)}); widen tornado_phoenix_port_range_end, free a port, or set app_port"
    )


def _choose_port_filter(listening, published, container, explicit=None, sticky=None,
                        range_start=4000, range_end=4099, exclude=(3001, 8001)):
    return choose_port(
        listening, published, container=container, explicit=explicit, sticky=sticky,
        range_start=range_start, range_end=range_end, exclude=exclude,
    )


class FilterModule:
    """Jinja filters: `ss_text | tornado_phoenix_ss_ports`, `inspect_text | tornado_phoenix_published_ports`,
    `listening | tornado_phoenix_choose_port(published, container, explicit, sticky, start, end, exclude)`,
    `wanted | tornado_phoenix_images_to_ship(host_images, host_redis_images)`."""

    def filters(self):
        return {
            "tornado_phoenix_ss_ports": parse_ss_listening,
            "tornado_phoenix_published_ports": parse_published_ports,
            "tornado_phoenix_choose_port": _choose_port_filter,
            "tornado_phoenix_sections": parse_sections,
            "tornado_phoenix_image_ids": parse_image_ids,
            "tornado_phoenix_running_image": running_image,
            "tornado_phoenix_images_to_ship": images_to_ship,
        }
