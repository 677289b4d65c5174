"""The login lockout's two pieces of our own (django-axes, settings ``AXES_*``).

- :func:`client_address`: the address a login comes from. ``REMOTE_ADDR``, unless that
  is one of the reverse proxies in ``TRUSTED_PROXIES`` (``DJANGO_TRUSTED_PROXIES``,
  default none): then the ``X-Forwarded-For`` hops are read from the right (each proxy
  appends the address it saw) and the first one that is not a trusted proxy is the
  client. So a client that talks to the admin directly cannot choose its address by
  sending the header, and behind the proxy every client keeps its own address.
  (django-axes' ipware route judges the header by its own content, not by who sent it.)
- :class:`LockoutHandler`: axes' database handler plus a per-address limit. Axes locks a
  user name + address pair after ``AXES_FAILURE_LIMIT`` failures; on top of that an
  address with ``LOGIN_ADDRESS_FAILURE_LIMIT`` failures (any user names, within the
  cool-off) is locked out alone, so one address cannot try many names, and failures
  from one address never lock the administrator out at another.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


def _is_address(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def _trusted(text: str, proxies: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    try:
        address = ip_address(text)
    except ValueError:
        return False
    return any(address.version == network.version and address in network for network in proxies)


def client_address(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or behind a trusted proxy the hop it reports."""
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = settings.TRUSTED_PROXIES
    if remote is None or not _trusted(remote, proxies):
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed(hops):
        if not _is_address(hop):
            break  # not what a trusted proxy writes: keep the proxy's own address
        if not _trusted(hop, proxies):
            return hop
    return remote


class LockoutHandler(AxesDatabaseHandler):
    """Axes' database handler; an address past ``LOGIN_ADDRESS_FAILURE_LIMIT`` counts as locked."""

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        failures = super().get_failures(request, credentials)
        address = getattr(request, "axes_ip_address", None)
        if address is None:
            return failures
        attempts = AccessAttempt.objects.filter(ip_address=address)
        if settings.AXES_COOLOFF_TIME is not None:
            attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
        from_address = attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0
        if from_address >= settings.LOGIN_ADDRESS_FAILURE_LIMIT:
            # On the pair's scale, so that axes' one comparison locks the address out.
            return max(failures, get_failure_limit(request, credentials))
        return failures
