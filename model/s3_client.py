"""How every riskserve process talks to S3: one settings class for the S3 client.

The predictor writes the inference log and the monitor reads it back, so both must
find the same endpoint from the same variables. They are the ecosystem's own, under
their own names: boto3's `AWS_*`, and the `S3_ENDPOINT` / `S3_USE_HTTPS` /
`S3_VERIFY_SSL` that KServe's storage initializer injects into a predictor pod from
the ServiceAccount's Secret annotations. When these lived in two settings classes they
drifted: the monitor ignored `S3_ENDPOINT` / `S3_USE_HTTPS`, so a log the predictor
wrote where KServe pointed it could not be read back with the same environment.

Why here, in `model/`: the base install (pydantic-settings included, for settings) is
what every image shares, and this module needs nothing more: boto3 is imported only
when a client is built, by the components that install it (serving, training,
monitoring). The predictor (`riskserve.serving.settings.StorageSettings`) and the monitor
(`riskserve.monitoring.settings.MonitorSettings`) extend `S3Settings` with their own fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    # boto3-stubs[s3] (the dev extra): types only, boto3 itself is imported lazily.
    from mypy_boto3_s3 import S3Client


class Boto3ClientKwargs(TypedDict, total=False):
    """The keyword arguments of `boto3.client("s3", ...)` that the settings set."""

    verify: bool
    endpoint_url: str
    use_ssl: bool
    aws_access_key_id: str
    aws_secret_access_key: str
    region_name: str


class S3Settings(BaseSettings):
    """The S3 endpoint, TLS and credentials, under the standard variable names."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    aws_endpoint_url: str | None = Field(default=None, alias="AWS_ENDPOINT_URL")
    """S3 endpoint of `s3://` model dirs and inference logs (SeaweedFS, Ceph RGW,
    ...); AWS if unset. Wins over `S3_ENDPOINT`."""

    s3_endpoint: str | None = Field(default=None, alias="S3_ENDPOINT")
    """KServe's name for the S3 endpoint (host[:port], no scheme)."""

    s3_use_https: bool = Field(default=True, alias="S3_USE_HTTPS")
    """`0` to talk plain HTTP to `S3_ENDPOINT` (as KServe's storage initializer;
    pydantic reads 0/1, true/false, yes/no, on/off as KServe's strtobool does)."""

    s3_verify_ssl: bool = Field(default=True, alias="S3_VERIFY_SSL")
    """`0` to skip TLS certificate checks against the S3 endpoint."""

    aws_access_key_id: SecretStr | None = Field(default=None, alias="AWS_ACCESS_KEY_ID")
    """S3 access key; when unset boto3 falls back to its own credential chain."""

    aws_secret_access_key: SecretStr | None = Field(
        default=None, alias="AWS_SECRET_ACCESS_KEY"
    )
    """S3 secret key."""

    aws_default_region: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_DEFAULT_REGION", "AWS_REGION")
    )
    """S3 region (SeaweedFS accepts any)."""

    @property
    def s3_endpoint_url(self) -> str | None:
        if self.aws_endpoint_url:
            return self.aws_endpoint_url
        if self.s3_endpoint:
            scheme = "https" if self.s3_use_https else "http"
            return f"{scheme}://{self.s3_endpoint}"
        return None

    @property
    def s3_verify(self) -> bool:
        return self.s3_verify_ssl

    def boto3_client_kwargs(self) -> Boto3ClientKwargs:
        """Arguments for `boto3.client("s3", ...)` honouring the standard variables."""
        kwargs: Boto3ClientKwargs = {"verify": self.s3_verify}
        if self.s3_endpoint_url:
            kwargs["endpoint_url"] = self.s3_endpoint_url
            kwargs["use_ssl"] = self.s3_endpoint_url.startswith("https")
        if self.aws_access_key_id and self.aws_secret_access_key:
            kwargs["aws_access_key_id"] = self.aws_access_key_id.get_secret_value()
            kwargs["aws_secret_access_key"] = (
                self.aws_secret_access_key.get_secret_value()
            )
        if self.aws_default_region:
            kwargs["region_name"] = self.aws_default_region
        return kwargs

    def s3_client(self) -> S3Client:
        """A boto3 S3 client for these settings (boto3 is imported here, not at the
        top: the base install does not carry it)."""
        import boto3

        return boto3.client("s3", **self.boto3_client_kwargs())


def s3_client(settings: S3Settings) -> S3Client:
    """`settings.s3_client()`, as a function (`riskserve.serving.storage` re-exports it)."""
    return settings.s3_client()
