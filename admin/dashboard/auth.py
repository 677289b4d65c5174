"""Authentication backends of the admin."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend


class LoginThrottleBackend(AxesStandaloneBackend):
    """django-axes' lockout check for every login that comes with a request.

    Web logins always carry the request. Calls without one (Django's test client
    ``login()``, a shell) have nothing to throttle by, and axes would refuse them,
    so they go straight to the next backend.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
