"""Sketchlab settings. Everything a deployment changes comes from the environment;
the defaults run the quick start locally (SQLite, local media, the demo categories)."""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from generator.files import atomic_write

BASE_DIR = Path(__file__).resolve().parent.parent


def env_flag(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def default_secret_key():
    # A per-checkout key kept out of git, so the quick start needs no setup and no two
    # installations share a key. Server workers starting at once never read a half-written key,
    # and the first one written wins.
    path = BASE_DIR / ".secret_key"
    if not path.exists():
        try:
            with atomic_write(path, exclusive=True, permissions=0o600) as temporary:
                temporary.write_text(secrets.token_urlsafe(50))
        except FileExistsError:
            pass
    return path.read_text().strip()


# A public deployment behind a TLS-terminating proxy (see the README): HTTPS only, secure cookies.
HTTPS = env_flag("HTTPS")
if HTTPS and not os.environ.get("SECRET_KEY"):
    # A key made up on the server would change with a new release folder or a lost file, and
    # every participant's session would end with it.
    raise ImproperlyConfigured("HTTPS is on (a public deployment): set SECRET_KEY in the environment.")
SECRET_KEY = os.environ.get("SECRET_KEY") or default_secret_key()
DEBUG = env_flag("DEBUG")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
if HTTPS:
    # The proxy says the request came over HTTPS; it must set X-Forwarded-Proto itself (and drop
    # any that a client sent).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 3600))
    # The study's own host names, so that forms post whatever the proxy says of the scheme.
    CSRF_TRUSTED_ORIGINS = CSRF_TRUSTED_ORIGINS or [
        f"https://{'*' + host if host.startswith('.') else host}" for host in ALLOWED_HOSTS if host != "*"]
    # HSTS for subdomains and the browsers' preload list would bind hosts that are not the study's.
    SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "generator",
    "ratings",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "ratings.errors.MethodNotAllowedPage",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

# The researchers' login is on the public site: after 10 wrong passwords from one address, whatever
# the usernames, that address waits 15 minutes (django-axes). Never by username alone: anyone could
# then lock a researcher out.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = 10
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_RESET_ON_SUCCESS = True
if HTTPS:
    # Behind the proxy (see docs/deployment.md) every request comes from the proxy's address; the
    # client's is the last one in X-Forwarded-For, which the proxy appends itself (earlier ones are
    # whatever the client sent). django-ipware reads it.
    AXES_IPWARE_PROXY_ORDER = "right-most"
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
    IPWARE_STRICT = False  # an unreadable entry a client sent must not hide the proxy's one

ROOT_URLCONF = "studysite.urls"

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

WSGI_APPLICATION = "studysite.wsgi.application"

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=60,
        # A kept connection that a database restart has cut is replaced before the request uses it,
        # instead of failing that request.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite ignores select_for_update: take the write lock when a transaction starts, so two
    # participants starting at once queue up instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20,
                                       **DATABASES["default"].get("OPTIONS", {})}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Every trial page and answer runs the same few queries: planned once per connection and kept
    # as prepared statements, each costs PostgreSQL about a fifth of its CPU time. (A pooler in
    # between must keep prepared statements: PgBouncer 1.21+ with max_prepared_statements set.)
    # Options the URL gives (sslmode=...) come on top.
    DATABASES["default"]["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": 2,
                                       **DATABASES["default"].get("OPTIONS", {})}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "admin:login"
CSRF_FAILURE_VIEW = "ratings.errors.csrf_failure"

# With DEBUG off Django would only mail request errors, to nobody: a server's log must have them.
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {name: {"handlers": ["console"], "level": LOG_LEVEL} for name in ("django", "ratings", "generator")},
}

# Sketch data: a search path of folders (dir1:dir2, as PATH) of <category>.npz or .ndjson files;
# fetch_sketches downloads the official sketch-rnn files into the first.
# Point QUICKDRAW_DATA_DIR at folders that hold them to work offline.
QUICKDRAW_DATA_DIR = os.environ.get("QUICKDRAW_DATA_DIR", str(BASE_DIR / ".cache" / "quickdraw"))
QUICKDRAW_URL = os.environ.get(
    "QUICKDRAW_URL", "https://storage.googleapis.com/quickdraw_dataset/sketchrnn/{category}.npz"
)

# The demo's trained checkpoints (committed, one per category): generate_samples's default.
DEMO_CHECKPOINT_DIR = BASE_DIR / "fixtures" / "checkpoints"

# Researcher-facing outputs of the commands (contact sheets): they say which sketches are real.
REPORTS_DIR = Path(os.environ.get("REPORTS_DIR", BASE_DIR / "reports"))
