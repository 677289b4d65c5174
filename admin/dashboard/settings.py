"""Settings of the admin service: every option is an env var with a default.

Every option is declared once in :class:`AdminEnv` below with its type, default and
meaning, under the pipeline's one rule (:class:`pipeline.settings.EnvSettings`): an
unset, empty or blank variable means the default; any other value (stripped) must
parse as the declared type, or the admin refuses to start naming the variable.
Booleans take true/false, 1/0, yes/no, on/off.

| env var                     | default                     | meaning |
|-----------------------------|-----------------------------|---------|
| DJANGO_DEBUG                | false                       | Django debug mode (also allows the dev superuser) |
| DJANGO_SECRET_KEY           | (a dev-only key if debug)   | secret key; required when debug is off |
| DJANGO_ALLOWED_HOSTS        | 127.0.0.1,localhost         | comma separated host names |
| DJANGO_CSRF_TRUSTED_ORIGINS | (empty)                     | comma separated origins, e.g. https://charts.example.com |
| DJANGO_LANGUAGE_CODE        | en                          | default language (en or ru); the browser's choice wins |
| DJANGO_TIME_ZONE            | UTC                         | time zone dates are shown in |
| POSTGRES_HOST               | 127.0.0.1                   | PostgreSQL host |
| POSTGRES_PORT               | 5432                        | PostgreSQL port |
| POSTGRES_DB                 | function_dashboard          | database name |
| POSTGRES_USER               | postgres                    | database role |
| POSTGRES_PASSWORD           | (empty)                     | its password; required when debug is off |
| ADMIN_STATEMENT_TIMEOUT_MS  | 10000                       | statement_timeout per query, ms (0 = none: bootstrap) |
| DJANGO_STATIC_ROOT          | (<repo>/var/static)         | where collectstatic puts files (served by WhiteNoise) |
| DJANGO_SECURE_COOKIES       | false                       | true behind HTTPS: cookies sent only over TLS |
| DJANGO_SECURE_SSL_REDIRECT  | false                       | true: redirect http to https (usually the proxy does it) |
| DJANGO_SECURE_HSTS_SECONDS  | 0                           | Strict-Transport-Security max-age once HTTPS works |
| DJANGO_SECURE_PROXY_SSL_HEADER | false                    | true: trust the proxy's X-Forwarded-Proto: https |
| DJANGO_LOGIN_FAILURE_LIMIT  | 5                           | failed logins (user name + address) before lockout |
| DJANGO_LOGIN_ADDRESS_FAILURE_LIMIT | 20                   | failed logins from one address before it is locked |
| DJANGO_LOGIN_COOLOFF_MINUTES| 15                          | how long a lockout lasts |
| DJANGO_TRUSTED_PROXIES      | (empty)                     | proxies (addresses, CIDR) whose X-Forwarded-For counts |
| ADD_WAIT_SECONDS            | 20                          | after Add, how long the admin waits for the chart |
| ADD_WAIT_CONCURRENCY        | 4                           | Adds per process that wait at once for their chart |
| STALLED_AFTER_SECONDS       | 600                         | a sent run quiet this long is sent again |
| RESEND_UNSENT_AFTER_SECONDS | 30                          | an unsent run is sent by the sweep after this |
| MAX_SENDS                   | 3                           | sends of a run without outcome before it fails |
| SWEEP_LIMIT                 | 5000                        | runs one sweep sends, fails or prunes at most |
| RUN_HISTORY_SECONDS         | 604800                      | finished runs older than this are deleted |
| SCHEDULE_PAGE               | 1000                        | due scheduled rows queued per transaction of a tick |

The table is checked against :class:`AdminEnv` by ``tests/test_settings.py``. The
pipeline's own settings (broker, result backend, datagen and exporter URLs,
chart size) and the log's (LOG_FORMAT, LOG_LEVEL) are in ``pipeline/pipeline/settings.py``;
the admin uses them through the pipeline package (it sends the chains and asks datagen
to check the add form).
The bootstrap's roles read theirs in ``functions/management/commands/ensure_*_role.py``.
"""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from pipeline.api import EnvSettings, admin_logging, load, split_list

BASE_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BASE_DIR.parent


class AdminEnv(EnvSettings):
    """The environment of the admin (web, persist worker, bootstrap)."""

    django_debug: bool = Field(False, description="Django debug mode (also allows the dev superuser)")
    django_secret_key: SecretStr = Field("", description="secret key; required when debug is off")
    django_allowed_hosts: str = Field("127.0.0.1,localhost", description="comma separated host names")
    django_csrf_trusted_origins: str = Field("", description="comma separated origins")
    django_language_code: str = Field("en", description="default language (en or ru); the browser's choice wins")
    django_time_zone: str = Field("UTC", description="time zone dates are shown in")
    postgres_host: str = Field("127.0.0.1", description="PostgreSQL host")
    postgres_port: int = Field(5432, ge=1, le=65535, description="PostgreSQL port")
    postgres_db: str = Field("function_dashboard", description="database name")
    postgres_user: str = Field("postgres", description="database role")
    postgres_password: SecretStr = Field("", description="its password; required when debug is off")
    admin_statement_timeout_ms: int = Field(
        10000,
        ge=0,
        description="statement_timeout of every query of the admin and the persist worker, in ms "
        "(0 = none: deploy/run bootstrap migrates without one)",
    )
    django_static_root: str = Field("", description="where collectstatic puts files; empty = <repo>/var/static")
    django_secure_cookies: bool = Field(False, description="true behind HTTPS: cookies sent only over TLS")
    django_secure_ssl_redirect: bool = Field(False, description="true: redirect http to https")
    django_secure_hsts_seconds: int = Field(0, ge=0, description="Strict-Transport-Security max-age")
    django_secure_proxy_ssl_header: bool = Field(False, description="true: trust X-Forwarded-Proto: https")
    django_login_failure_limit: int = Field(5, ge=1, description="failed logins (user name + address) before lockout")
    django_login_address_failure_limit: int = Field(
        20, ge=1, description="failed logins from one address (any user names) before that address is locked out"
    )
    django_login_cooloff_minutes: float = Field(15.0, gt=0, description="how long a lockout lasts")
    django_trusted_proxies: str = Field(
        "",
        description="comma separated addresses or networks (CIDR) of the reverse proxies in front of the admin "
        "whose X-Forwarded-For is believed; empty: none, the client address is the connection's",
    )
    add_wait_seconds: float = Field(20.0, ge=0, description="after Add, how long the admin waits for the chart")
    add_wait_concurrency: int = Field(4, ge=0, description="Adds per process that wait at once for their chart")
    stalled_after_seconds: float = Field(
        600.0, gt=0, description="a sent run with no stage heard of this long is sent again (failed after MAX_SENDS)"
    )
    resend_unsent_after_seconds: float = Field(
        30.0, gt=0, description="a run not sent this long after it was queued is sent by the sweep"
    )
    max_sends: int = Field(3, ge=1, description="sends of a run with no outcome before the sweep fails it")
    sweep_limit: int = Field(5000, ge=1, description="runs one sweep sends, fails or prunes at most")
    run_history_seconds: float = Field(
        7 * 86400.0, gt=0, description="finished runs older than this are deleted by the sweep"
    )
    schedule_page: int = Field(
        1000, ge=1, description="rows due for their scheduled refresh that one transaction of a tick queues"
    )

    @field_validator("django_trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in split_list(value):
            ip_network(item, strict=False)  # ValueError: names the variable
        return value

    @model_validator(mode="after")
    def _address_limit_above_the_pair_limit(self) -> AdminEnv:
        if self.django_login_address_failure_limit <= self.django_login_failure_limit:
            raise ValueError(
                "DJANGO_LOGIN_ADDRESS_FAILURE_LIMIT must be above DJANGO_LOGIN_FAILURE_LIMIT "
                "(an address alone is locked out only after more failures than a user name at it)"
            )
        return self


# Lower case: not a setting (Django reads upper-case names only), so no debug page or
# settings dump shows it; its secrets are SecretStr besides (their repr is masked).
env: AdminEnv = load(AdminEnv, "admin")

DEBUG = env.django_debug
SECRET_KEY = env.django_secret_key.get_secret_value()
SECRET_KEY = SECRET_KEY or ("dev-only-insecure-key-do-not-use-in-production" if DEBUG else "")
if not DEBUG and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or "insecure" in SECRET_KEY.lower()):
    from django.core.exceptions import ImproperlyConfigured

    # Also refuses the placeholder defaults that contain "insecure".
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set to a random value of at least 50 characters when DJANGO_DEBUG is off "
        "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))')"
    )
if not DEBUG and not env.postgres_password.get_secret_value():
    from django.core.exceptions import ImproperlyConfigured

    # An empty password would be sent as none at all: refused, as the README's Security section says.
    raise ImproperlyConfigured("POSTGRES_PASSWORD must be set (not empty) when DJANGO_DEBUG is off")

ALLOWED_HOSTS = split_list(env.django_allowed_hosts)
CSRF_TRUSTED_ORIGINS = split_list(env.django_csrf_trusted_origins)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "csp",
    "functions",
]

MIDDLEWARE = [
    # First: times every request, the ones answered by a later middleware too.
    "dashboard.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # PostgreSQL away: a view's OperationalError/InterfaceError answers 503 with a page saying so.
    "functions.database_away.DatabaseAwayMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it answers 429 to a locked-out login.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dashboard.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "dashboard.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": env.postgres_host,
        "PORT": env.postgres_port,
        "NAME": env.postgres_db,
        "USER": env.postgres_user,
        "PASSWORD": env.postgres_password.get_secret_value(),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        # Sent at connect time: no request (nor a sweep, nor a persist) holds the database
        # longer than this; PostgreSQL cancels the statement (issue 19).
        "OPTIONS": {"options": f"-c statement_timeout={env.admin_statement_timeout_ms}"},
    }
}

# Login throttling (django-axes): after DJANGO_LOGIN_FAILURE_LIMIT failed logins for one
# user name from one address, that pair is locked out for DJANGO_LOGIN_COOLOFF_MINUTES
# (HTTP 429), even with the right password; after DJANGO_LOGIN_ADDRESS_FAILURE_LIMIT from
# one address (any user names), that address alone. The address is REMOTE_ADDR, or, when
# that is a proxy of DJANGO_TRUSTED_PROXIES, the client it reports in X-Forwarded-For
# (dashboard/lockout.py): so behind the proxy one client cannot lock out another.
AUTHENTICATION_BACKENDS = [
    # django-axes first: every login through a request is checked against the lockout.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.django_login_failure_limit
AXES_COOLOFF_TIME = timedelta(minutes=env.django_login_cooloff_minutes)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "dashboard.lockout.client_address"
AXES_HANDLER = "dashboard.lockout.LockoutHandler"
LOGIN_ADDRESS_FAILURE_LIMIT = env.django_login_address_failure_limit
TRUSTED_PROXIES = tuple(ip_network(item, strict=False) for item in split_list(env.django_trusted_proxies))
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429

# Content-Security-Policy (django-csp): every script, style, image and request comes from
# the admin itself; no inline script or style, no eval, no plugin, no frame. The admin's
# templates, the list's live rows and the interactive chart (Highstock, served by the
# admin) work under it: tests/e2e/test_csp.py loads them and listens for violations.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# HTTPS (issue 11.3): TLS ends at a reverse proxy in front of the admin; these turn on
# what `manage.py check --deploy` asks for once it does.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.django_secure_cookies
SECURE_SSL_REDIRECT = env.django_secure_ssl_redirect
SECURE_HSTS_SECONDS = env.django_secure_hsts_seconds
if env.django_secure_proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env.django_language_code
LANGUAGES = [("en", "English"), ("ru", "Русский")]
LOCALE_PATHS = [BASE_DIR / "locale", BASE_DIR / "locale_overrides"]
TIME_ZONE = env.django_time_zone
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Highstock for the detail page's interactive chart: copied from the exporter's
# npm lock (the same Highcharts version that draws the PNGs) by deploy/lib.sh.
STATICFILES_DIRS = [("vendor/highcharts", BASE_DIR / "vendor" / "highcharts")]
STATIC_ROOT = Path(env.django_static_root or REPO_DIR / "var" / "static")
STORAGES = {
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Tests and debug runs serve static files without collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

ADD_WAIT_SECONDS = env.add_wait_seconds
ADD_WAIT_CONCURRENCY = env.add_wait_concurrency
STALLED_AFTER_SECONDS = env.stalled_after_seconds
RESEND_UNSENT_AFTER_SECONDS = env.resend_unsent_after_seconds
MAX_SENDS = env.max_sends
SWEEP_LIMIT = env.sweep_limit
RUN_HISTORY_SECONDS = env.run_history_seconds
SCHEDULE_PAGE = env.schedule_page

# Debug pages (DJANGO_DEBUG) only for requests from the machine itself, with every
# setting whose name suggests a secret, URL or environment masked (issue 19).
DEFAULT_EXCEPTION_REPORTER = "dashboard.debug.LocalOnlyExceptionReporter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "dashboard.debug.SecretsFilter"

# One JSON line per event (LOG_FORMAT, LOG_LEVEL: pipeline/pipeline/settings.py), Django's,
# gunicorn's and the persist worker's records alike; README, "Operating it", "Logs".
LOGGING_CONFIG = "pipeline.api.configure_logging"
LOGGING = admin_logging()
