"""Configuration from the environment or `.env` (pydantic-settings). `.env.example` documents it."""

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from raiox.kit.errors import ConfigError

DEFAULT_UPLOAD_HOSTS = ["https://www.jotform.com", "https://eu.jotform.com", "https://hipaa.jotform.com"]


def _split(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) origin: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname.lower()}:{port}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAIOX_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("./var")
    database_url: str = ""
    db_pool_size: int = Field(default=20, ge=1)  # connections kept per process (webhook bursts reuse them)
    db_max_overflow: int = Field(default=20, ge=0)  # extra connections opened (and closed) beyond the pool
    # procrastinate's pool, per process (a worker also holds one connection of its own for LISTEN); the deploy bounds
    # these three for PostgreSQL's max_connections (docs/operations.md, "Database connections")
    db_job_pool_size: int = Field(default=10, ge=1)
    # how long `raiox serve` / `worker` / `admin` wait for an unreachable database at start before giving up
    database_wait_s: int = Field(default=120, ge=0, le=3600)
    storage_url: str = ""
    s3_endpoint: str = ""
    s3_region: str = "us-east-1"
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None

    jotform_api_key: SecretStr | None = None
    jotform_api_url: str = "https://api.jotform.com"
    jotform_form_id: str = ""
    jotform_upload_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_UPLOAD_HOSTS))
    jotform_verify_submissions: bool = False
    jotform_field_map: dict[str, str] = Field(default_factory=dict)
    jotform_result_fields: dict[str, str] = Field(default_factory=dict)
    # the Jotform account's time zone: the API's `created_at` ("YYYY-MM-DD HH:MM:SS", no zone) is read in it
    jotform_timezone: str = "America/Sao_Paulo"
    webhook_secret: SecretStr | None = None

    embedder: str = "raiox-v12"
    connection_model: str = ""  # the connection reader's ONNX file ("" shipped, "none" off): raiox.vision.connection
    feature_model: str = ""  # the design-feature reader's ONNX file ("" shipped, "none" off): raiox.vision.features
    ends_model: str = ""  # the localiser's ends model's ONNX file ("" shipped, "none" off): raiox.vision.ends
    thread_count: bool = True  # count a fixture's threads and re-rank by its candidates' lines (raiox.vision.threads)
    # intra-op threads of each ONNX Runtime session (the embedder and the small readers): raiox.vision.onnxrt reads
    # RAIOX_ONNX_THREADS from the environment, so that it needs no raiox.kit; `get_settings` puts this value there
    onnx_threads: int = Field(default=1, ge=1, le=64)
    top_k: int = Field(default=5, ge=1, le=50)

    download_max_bytes: int = 30 * 1024 * 1024
    download_timeout_s: float = 20.0
    download_retries: int = 4
    # pixels of one decoded image; Pillow's own backstop (raiox.vision.io) refuses any image over 250 M first
    max_pixels: int = Field(default=60_000_000, ge=1, le=250_000_000)
    # images decoded and analysed at once by POST /identify, per process
    identify_concurrency: int = Field(default=2, ge=1)
    # images POST /identify lets wait for a slot, per process; past it a request is answered 503 at once
    identify_max_waiting: int = Field(default=16, ge=1)
    job_retries: int = 5
    job_retry_wait_s: int = 3  # exponential backoff base between job attempts: 3, 9, 27, 81, 243 s
    stalled_job_seconds: int = 30  # a running job whose worker sent no heartbeat for this long is requeued
    jotform_retries: int = 3  # API calls and downloads: attempts after the first on 429/5xx/timeouts
    retry_backoff_s: float = 0.5  # first backoff of those retries (doubles each time)
    reconcile_every_minutes: int = 10
    reconcile_lookback_hours: int = 48

    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: SecretStr | None = None
    smtp_from: str = ""
    smtp_reply_to: str = ""  # where the dentist's reply goes (Reply-To) when RAIOX_SMTP_FROM is a no-reply sender
    smtp_starttls: bool = True

    session_secret: SecretStr | None = None
    public_url: str = "http://127.0.0.1:8000"
    # Result delivery (review/delivery): attempts and base backoff for Jotform/SMTP, report link lifetime
    delivery_retries: int = Field(default=5, ge=1, le=20)
    delivery_backoff_s: float = Field(default=2.0, ge=0)
    jotform_timeout_s: float = Field(default=15.0, gt=0)
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    report_link_days: int = Field(default=90, ge=1)
    # days after which a closed case's films and personal data are removed (0: kept; raiox.cases.retention)
    retention_days: int = Field(default=0, ge=0)
    # days after which sign-in audit entries (auth.*) lose the client's address (0: kept; raiox.cases.tasks)
    audit_address_retention_days: int = Field(default=90, ge=0, le=36500)
    # Admin panel: language, session lifetime, login lock-out
    admin_locale: str = "pt_BR"
    admin_timezone: str = "America/Sao_Paulo"  # times shown in the panel
    client_timezone: str = "America/Sao_Paulo"  # dates the dentist reads (e-mail, report), whatever the panel's
    admin_session_hours: int = Field(default=12, ge=1)
    admin_max_failed_logins: int = Field(default=5, ge=1)  # from one source address: that source is locked out
    admin_max_failed_logins_account: int = Field(default=50, ge=1)  # from all sources: the account is locked
    admin_lockout_minutes: int = Field(default=15, ge=1)
    # confidence labels (raiox.review.casepage): the first candidate's lead over the runner-up, with a similarity floor
    confidence_margin_high: float = Field(default=0.05, ge=0)  # lead for "alta"
    confidence_margin_medium: float = Field(default=0.02, ge=0)  # lead for "média"
    confidence_high: float = 0.85  # similarity for "alta" when there is no runner-up to compare with
    confidence_medium: float = 0.70  # similarity below which a candidate is "baixa" whatever its lead
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("jotform_upload_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: object) -> object:
        return _split(value)

    @field_validator("jotform_upload_hosts")
    @classmethod
    def _valid_hosts(cls, value: list[str]) -> list[str]:
        return [_origin(v) for v in value]

    @field_validator("jotform_timezone", "client_timezone", "admin_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        """An IANA time zone name (America/Sao_Paulo, America/Manaus, UTC)."""
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"not a time zone name: {value!r} (e.g. America/Sao_Paulo)") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        """A PostgreSQL URL, or empty for the embedded server (the value is never echoed: it holds a password)."""
        from sqlalchemy.engine import make_url

        try:
            driver = make_url(value).drivername.partition("+")[0] if value else "postgresql"
        except Exception:  # noqa: BLE001 - sqlalchemy's ArgumentError, or ValueError for a bad port
            driver = None
        if driver not in ("postgresql", "postgres"):
            raise ValueError("not a PostgreSQL URL (postgresql://USER:PASSWORD@HOST:PORT/DATABASE)")
        return value

    @field_validator("storage_url")
    @classmethod
    def _storage(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and parts.scheme not in ("file", "s3"):
            raise ValueError("must start with file:// or s3://")
        if parts.scheme == "file" and (parts.netloc or not parts.path.startswith("/")):
            # file://data/x or file:// would store under whatever folder a command is started from
            raise ValueError("a file:// URL needs an absolute folder: file:///var/lib/raiox/storage")
        if parts.scheme == "s3" and not parts.netloc:
            raise ValueError("an s3:// URL names its bucket: s3://BUCKET[/PREFIX]")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _production_requires(self) -> "Settings":
        if self.env == "production":
            missing = [name for name in ("database_url", "webhook_secret", "jotform_api_key", "session_secret")
                       if not getattr(self, name)]
            if missing:
                names = ", ".join("RAIOX_" + m.upper() for m in missing)
                raise ValueError(f"required in production: {names}")
        if self.jotform_verify_submissions:
            # a verified delivery is only a notification: the case exists once the API's copy is read. Without a key
            # no copy is ever read; without the form id nothing ingests a submission whose verification gave up
            # (Jotform down past the job's retries) — either way the webhook's 200 would be a submission lost
            missing = [name for name in ("jotform_api_key", "jotform_form_id") if not getattr(self, name)]
            if missing:
                names = " and ".join("RAIOX_" + m.upper() for m in missing)
                raise ValueError(f"RAIOX_JOTFORM_VERIFY_SUBMISSIONS=true needs {names} (the submission is read back "
                                 "from the Jotform API; reconciliation ingests those whose verification could not "
                                 "reach Jotform)")
        if self.storage_url.startswith("s3://") and not (self.s3_access_key and self.s3_secret_key):
            raise ValueError("s3:// storage needs RAIOX_S3_ACCESS_KEY and RAIOX_S3_SECRET_KEY")
        return self

    @property
    def embedded_database(self) -> bool:
        return not self.database_url

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or f"file://{(self.data_dir / 'storage').resolve()}"


def _env_name(loc: tuple) -> str:
    """The environment variable a validation error is about (RAIOX_TOP_K), or "settings" for the whole."""
    return f"RAIOX_{str(loc[0]).upper()}" if loc else "settings"


def _env_file() -> str | None:
    """`.env` of the current folder, when there is one that can be read. A folder the user cannot look into (root's
    home, after `sudo -u raiox`) has none for it: not an error that stops every command."""
    try:
        return ".env" if Path(".env").is_file() else None
    except OSError:
        return None


@lru_cache
def get_settings() -> Settings:
    try:
        settings = Settings(_env_file=_env_file())
    except ValidationError as exc:
        lines = [f"  {_env_name(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid configuration (RAIOX_* environment / .env):\n" + "\n".join(lines)) from None
    except SettingsError as exc:  # a value that must be JSON and is not (RAIOX_JOTFORM_FIELD_MAP=notjson)
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"RAIOX_{field.group(1).upper()}" if field else "settings"
        raise ConfigError(f"invalid configuration (RAIOX_* environment / .env):\n  {name}: cannot be read ({exc}; "
                          "a JSON value is expected)") from None
    _export_for_vision(settings)
    return settings


def _export_for_vision(settings: Settings) -> None:
    """The settings `raiox.vision` takes from its caller through the environment (it reads no `.env` and imports
    no raiox.kit, so that it can be used on its own): a `.env` line takes effect like an exported variable."""
    import os

    os.environ["RAIOX_ONNX_THREADS"] = str(settings.onnx_threads)
