"""Settings of the admin service: every option is an env var with a default.

| env var                     | default                     | meaning |
|-----------------------------|-----------------------------|---------|
| DJANGO_DEBUG                | false                       | Django debug mode (also allows the dev superuser) |
| DJANGO_SECRET_KEY           | a dev-only key if debug     | secret key; required when debug is off |
| DJANGO_ALLOWED_HOSTS        | 127.0.0.1,localhost         | comma separated host names |
| DJANGO_CSRF_TRUSTED_ORIGINS | (empty)                     | comma separated origins, e.g. https://charts.example.com |
| DJANGO_LANGUAGE_CODE        | en                          | default language (en or ru); the browser's choice wins |
| DJANGO_TIME_ZONE            | UTC                         | time zone dates are shown in |
| POSTGRES_HOST               | 127.0.0.1                   | PostgreSQL host |
| POSTGRES_PORT               | 5432                        | PostgreSQL port |
| POSTGRES_DB                 | function_dashboard          | database name |
| POSTGRES_USER               | postgres                    | database role |
| POSTGRES_PASSWORD           | (empty)                     | its password |
| DJANGO_STATIC_ROOT          | <repo>/var/static           | where collectstatic puts files (served by WhiteNoise) |
| DJANGO_SECURE_COOKIES       | false                       | true behind HTTPS: cookies sent only over TLS |
| DJANGO_SECURE_SSL_REDIRECT  | false                       | true: redirect http to https (usually the proxy does it) |
| DJANGO_SECURE_HSTS_SECONDS  | 0                           | Strict-Transport-Security max-age once HTTPS works |
| DJANGO_SECURE_PROXY_SSL_HEADER | false                    | true: trust the proxy's X-Forwarded-Proto: https |
| DJANGO_LOGIN_FAILURE_LIMIT  | 5                           | failed logins (user name + address) before lockout |
| DJANGO_LOGIN_COOLOFF_MINUTES| 15                          | how long a lockout lasts |
| ADD_WAIT_SECONDS            | 20                          | after Add, how long the admin waits for the chart |
| ADD_WAIT_CONCURRENCY        | 4                           | Adds per process that wait at once for their chart |
| STALLED_AFTER_SECONDS       | 600                         | a run with no progress for this long is marked failed |

The pipeline's own settings (broker, result backend, datagen and exporter URLs,
chart size) are in ``pipeline/pipeline/settings.py``; the admin uses them through
the pipeline package (it sends the chains and asks datagen to check the add form).
"""

import os
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BASE_DIR.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DEBUG = env("DJANGO_DEBUG", "false").lower() in {"1", "true", "yes", "on"}
SECRET_KEY = env("DJANGO_SECRET_KEY") or ("dev-only-insecure-key-do-not-use-in-production" if DEBUG else "")
if not DEBUG and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or "insecure" in SECRET_KEY.lower()):
    from django.core.exceptions import ImproperlyConfigured

    # Also refuses the placeholder defaults that contain "insecure".
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set to a random value of at least 50 characters when DJANGO_DEBUG is off "
        "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))')"
    )

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "functions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
        "HOST": env("POSTGRES_HOST", "127.0.0.1"),
        "PORT": env("POSTGRES_PORT", "5432"),
        "NAME": env("POSTGRES_DB", "function_dashboard"),
        "USER": env("POSTGRES_USER", "postgres"),
        "PASSWORD": env("POSTGRES_PASSWORD"),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }
}

# Login throttling (django-axes): after DJANGO_LOGIN_FAILURE_LIMIT failed logins for one
# user name from one address, that pair is locked out for DJANGO_LOGIN_COOLOFF_MINUTES
# (HTTP 429), even with the right password. The address is REMOTE_ADDR (not a header a
# client could forge); behind a reverse proxy the user name still tells users apart.
AUTHENTICATION_BACKENDS = [
    "dashboard.auth.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(env("DJANGO_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(env("DJANGO_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429

# HTTPS (issue 11.3): TLS ends at a reverse proxy in front of the admin; these turn on
# what `manage.py check --deploy` asks for once it does.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env("DJANGO_SECURE_COOKIES", "false").lower() in {"1", "true", "yes", "on"}
SECURE_SSL_REDIRECT = env("DJANGO_SECURE_SSL_REDIRECT", "false").lower() in {"1", "true", "yes", "on"}
SECURE_HSTS_SECONDS = int(env("DJANGO_SECURE_HSTS_SECONDS", "0"))
if env("DJANGO_SECURE_PROXY_SSL_HEADER", "false").lower() in {"1", "true", "yes", "on"}:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env("DJANGO_LANGUAGE_CODE", "en")
LANGUAGES = [("en", "English"), ("ru", "Русский")]
LOCALE_PATHS = [BASE_DIR / "locale", BASE_DIR / "locale_overrides"]
TIME_ZONE = env("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Highstock for the detail page's interactive chart: copied from the exporter's
# npm lock (the same Highcharts version that draws the PNGs) by deploy/lib.sh.
STATICFILES_DIRS = [("vendor/highcharts", BASE_DIR / "vendor" / "highcharts")]
STATIC_ROOT = Path(env("DJANGO_STATIC_ROOT", str(REPO_DIR / "var" / "static")))
STORAGES = {
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Tests and debug runs serve static files without collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

ADD_WAIT_SECONDS = float(env("ADD_WAIT_SECONDS", "20"))
ADD_WAIT_CONCURRENCY = int(env("ADD_WAIT_CONCURRENCY", "4"))
STALLED_AFTER_SECONDS = float(env("STALLED_AFTER_SECONDS", "600"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
}
