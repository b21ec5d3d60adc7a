"""A tiny private CA for the webhook's serving certificate.

The kube-apiserver only calls a ValidatingAdmissionWebhook over HTTPS and
verifies the webhook's certificate against the ``caBundle`` of the
ValidatingWebhookConfiguration.  This module makes that CA and the serving
certificate with nothing but ``cryptography``:

* :func:`write_bundle` creates a fresh CA plus a serving certificate and
  writes ``ca.crt``, ``ca.key``, ``tls.crt`` and ``tls.key`` into a directory.
* :func:`renew_serving_cert` issues a new serving certificate from the CA
  already in that directory (``ca.crt`` stays byte-for-byte the same, so the
  ``caBundle`` registered with the API server stays valid).

``ca.key`` is written so that renewals are possible.  In production keep the
CA key somewhere else (a secret store, an offline machine) or delete it
once the bundle is issued: whoever has it can mint certificates that the API
server will trust for this webhook.

Every file is written atomically: a temporary file in the same directory is
written, fsynced and ``os.replace``-d over the target, and the directory is
fsynced.  A reader (for example :mod:`certs.reloader`) sees either the old or
the new file, never half of one.  Private keys are created with mode 0600.
Note that a bundle is several files: a reader can still briefly see a new
``tls.key`` next to the old ``tls.crt``; the reloader rejects such a
mismatched pair and picks up the complete pair on its next poll.
"""

from __future__ import annotations

import base64
import datetime as _dt
import ipaddress
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "TLS_CERT",
    "TLS_KEY",
    "Bundle",
    "CertError",
    "BundleExistsError",
    "InvalidCertInputError",
    "CAError",
    "make_ca",
    "make_serving_cert",
    "write_bundle",
    "renew_serving_cert",
    "ca_bundle_b64",
]

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"

DEFAULT_DAYS = 365
#: The CA outlives the serving certificates it signs, so renewals keep working
#: without touching the caBundle.  It is never shorter than the serving cert.
DEFAULT_CA_DAYS = 3650
MAX_DAYS = 36500
#: Certificates start this long before "now" so that an API server whose clock
#: is slightly behind ours does not reject a brand-new cert as "not yet valid".
#: The validity span (not_after - not_before) is still exactly ``days``.
CLOCK_SKEW = _dt.timedelta(minutes=5)

KEY_TYPES = ("ec", "rsa")


class CertError(Exception):
    """Base class for errors raised by this module."""


class BundleExistsError(CertError, FileExistsError):
    """A target file already exists and ``force`` was not given."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = list(paths)
        names = ", ".join(str(p) for p in self.paths)
        noun = "file" if len(self.paths) == 1 else "files"
        super().__init__(
            f"refusing to overwrite existing {noun} {names} "
            "(use --force / force=True to replace)"
        )

    def __str__(self) -> str:  # FileExistsError would otherwise format errno
        return self.args[0]


class InvalidCertInputError(CertError, ValueError):
    """Bad DNS name, IP address, day count or key type."""


class CAError(CertError):
    """The CA on disk is missing, unreadable or unusable for renewal."""


@dataclass(frozen=True)
class Bundle:
    """Paths of a written bundle plus the ``caBundle`` value for Kubernetes."""

    out_dir: Path
    ca_cert: Path
    ca_key: Path
    tls_cert: Path
    tls_key: Path
    #: base64 of the CA certificate PEM: the ``caBundle`` field of a
    #: ValidatingWebhookConfiguration's ``clientConfig``.
    ca_bundle: str
    #: serial number of the serving certificate in ``tls.crt``
    serial: int
    not_valid_before: _dt.datetime
    not_valid_after: _dt.datetime


# --------------------------------------------------------------------------
# input validation

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def _validate_dns_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidCertInputError(f"DNS name must be a string, got {name!r}")
    original = name
    name = name.strip()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise InvalidCertInputError("empty DNS name")
    if not name.isascii():
        raise InvalidCertInputError(
            f"invalid DNS name {original!r}: non-ASCII; use the punycode (xn--) form"
        )
    if len(name) > 253:
        raise InvalidCertInputError(
            f"invalid DNS name {original!r}: longer than 253 characters"
        )
    labels = name.split(".")
    if labels[0] == "*":  # one leading wildcard label, e.g. *.svc.example
        labels = labels[1:]
        if not labels:
            raise InvalidCertInputError(f"invalid DNS name {original!r}: bare wildcard")
    for label in labels:
        if not _LABEL.match(label):
            raise InvalidCertInputError(
                f"invalid DNS name {original!r}: label {label!r} must be 1-63 "
                "letters, digits or '-' and must not start or end with '-'"
            )
    # An IP literal is not a DNS name; SANs for addresses go in --ip.
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise InvalidCertInputError(
            f"invalid DNS name {original!r}: it is an IP address, pass it as an IP SAN"
        )
    return name.lower()


def _validate_ip(value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    if not isinstance(value, str):
        raise InvalidCertInputError(f"IP address must be a string, got {value!r}")
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise InvalidCertInputError(
            f"invalid IP address {value!r}: expected an IPv4 or IPv6 address "
            "such as 10.0.0.1 or fd00::1"
        ) from None


def _validate_days(days: object, what: str = "days") -> int:
    if isinstance(days, bool) or not isinstance(days, int):
        raise InvalidCertInputError(f"{what} must be an integer, got {days!r}")
    if days < 1:
        raise InvalidCertInputError(f"{what} must be at least 1, got {days}")
    if days > MAX_DAYS:
        raise InvalidCertInputError(f"{what} must be at most {MAX_DAYS}, got {days}")
    return days


def _validate_sans(
    dns_names: Iterable[str] | None, ip_addresses: Iterable[object] | None
) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    if isinstance(dns_names, str):
        dns_names = [dns_names]
    if isinstance(ip_addresses, str):
        ip_addresses = [ip_addresses]
    dns: list[str] = []
    for n in dns_names or ():
        v = _validate_dns_name(n)
        if v not in dns:
            dns.append(v)
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for a in ip_addresses or ():
        ip = _validate_ip(a)
        if ip not in ips:
            ips.append(ip)
    if not dns and not ips:
        raise InvalidCertInputError(
            "at least one DNS name or IP address is required for the serving certificate"
        )
    return dns, ips


def _validate_key_type(key_type: object) -> str:
    if key_type not in KEY_TYPES:
        raise InvalidCertInputError(
            f"key_type must be one of {', '.join(KEY_TYPES)}, got {key_type!r}"
        )
    return key_type


def _new_key(key_type: str):
    if _validate_key_type(key_type) == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


# --------------------------------------------------------------------------
# certificate construction (in memory)


def _builder(subject: x509.Name, issuer: x509.Name, key, start, end) -> x509.CertificateBuilder:
    """A builder with the fields every certificate here has: names, key, serial, validity."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )


def _key_usage(**flags: bool) -> x509.KeyUsage:
    """keyUsage with only ``flags`` set (x509.KeyUsage wants all nine spelled out)."""
    usages = dict.fromkeys(
        (
            "digital_signature", "content_commitment", "key_encipherment",
            "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
            "encipher_only", "decipher_only",
        ),
        False,
    )
    return x509.KeyUsage(**{**usages, **flags})  # a misspelt flag is a TypeError there


def make_ca(
    common_name: str = "capacity-webhook-ca",
    days: int = DEFAULT_CA_DAYS,
    key_type: str = "ec",
):
    """Return ``(private_key, certificate)`` of a new self-signed CA.

    CA:true (critical, pathlen 0), keyUsage keyCertSign+cRLSign (critical), SKI.
    """
    days = _validate_days(days, "CA days")
    key = _new_key(key_type)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = _now() - CLOCK_SKEW
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        _builder(name, name, key, start, start + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_serving_cert(
    ca_key,
    ca_cert: x509.Certificate,
    dns_names: Iterable[str] | None,
    ip_addresses: Iterable[object] | None = None,
    days: int = DEFAULT_DAYS,
    key_type: str = "ec",
):
    """Return ``(private_key, certificate)`` of a serving cert signed by the CA.

    SANs = the given DNS names and IPs; CN = first DNS name (or first IP when
    there is none, or no CN if the name is longer than the 64 characters X.509
    allows in a CN - clients only look at the SANs anyway).  serverAuth EKU,
    digitalSignature (+keyEncipherment for RSA), CA:false, SKI and AKI.
    """
    dns, ips = _validate_sans(dns_names, ip_addresses)
    days = _validate_days(days)
    key = _new_key(key_type)
    start = _now() - CLOCK_SKEW
    end = start + _dt.timedelta(days=days)
    if end > ca_cert.not_valid_after_utc:
        raise CAError(
            f"the CA expires {ca_cert.not_valid_after_utc:%Y-%m-%d}, before the "
            f"requested serving certificate would ({end:%Y-%m-%d}); use fewer days "
            "or make a new CA"
        )
    cn = dns[0] if dns else str(ips[0])
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if len(cn) <= 64 else []
    )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    sans += [x509.IPAddress(a) for a in ips]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        _builder(subject, ca_cert.subject, key, start, end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(digital_signature=True, key_encipherment=key_type == "rsa"),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        # RFC 5280: SAN must be critical when the subject is empty.
        .add_extension(x509.SubjectAlternativeName(sans), critical=len(subject) == 0)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


# --------------------------------------------------------------------------
# serialisation and atomic files


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ca_bundle_b64(ca_pem: bytes) -> str:
    """base64 of the CA PEM, as ``clientConfig.caBundle`` wants it."""
    return base64.b64encode(ca_pem).decode("ascii")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file only."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # before any byte of a key is written
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def _paths(out_dir: Path) -> dict[str, Path]:
    return {n: out_dir / n for n in (CA_CERT, CA_KEY, TLS_CERT, TLS_KEY)}


def _prepare_dir(out_dir: os.PathLike | str) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CertError(f"output path {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True, mode=0o755)
    except OSError as e:
        raise CertError(f"cannot create output directory {out}: {e.strerror}") from None
    return out


def _write(path: Path, data: bytes, mode: int) -> None:
    try:
        _atomic_write(path, data, mode)
    except OSError as e:
        raise CertError(f"cannot write {path}: {e.strerror or e}") from None


# --------------------------------------------------------------------------
# public file-level API


def write_bundle(
    out_dir: os.PathLike | str,
    dns_names: Iterable[str] | None,
    ip_addresses: Iterable[object] | None = None,
    days: int = DEFAULT_DAYS,
    force: bool = False,
    *,
    key_type: str = "ec",
    ca_days: int | None = None,
    ca_common_name: str = "capacity-webhook-ca",
) -> Bundle:
    """Create a new CA and serving certificate and write them to ``out_dir``.

    Writes ``ca.crt``, ``ca.key`` (0600), ``tls.crt`` and ``tls.key`` (0600).
    Without ``force``, raises :class:`BundleExistsError` (naming the files)
    if any of them exists, before anything is written.  Input is validated
    first (:class:`InvalidCertInputError`).  ``ca_days`` defaults to
    ``max(days, 3650)``.
    """
    dns, ips = _validate_sans(dns_names, ip_addresses)
    days = _validate_days(days)
    ca_days = max(days, DEFAULT_CA_DAYS) if ca_days is None else _validate_days(ca_days, "CA days")
    if ca_days < days:
        raise InvalidCertInputError(
            f"CA days ({ca_days}) must not be shorter than serving days ({days})"
        )
    _validate_key_type(key_type)  # before any file is touched
    out = Path(out_dir)
    paths = _paths(out)
    if not force:
        existing = [p for p in paths.values() if os.path.lexists(p)]
        if existing:
            raise BundleExistsError(existing)
    out = _prepare_dir(out)

    ca_key, ca_cert = make_ca(ca_common_name, ca_days, key_type)
    key, cert = make_serving_cert(ca_key, ca_cert, dns, ips, days, key_type)
    ca_pem = _cert_pem(ca_cert)

    # CA first, serving key before serving cert (same order as renewal).
    _write(paths[CA_KEY], _key_pem(ca_key), 0o600)
    _write(paths[CA_CERT], ca_pem, 0o644)
    _write(paths[TLS_KEY], _key_pem(key), 0o600)
    _write(paths[TLS_CERT], _cert_pem(cert), 0o644)
    return _bundle(out, ca_pem, cert)


def _bundle(out: Path, ca_pem: bytes, cert: x509.Certificate) -> Bundle:
    p = _paths(out)
    return Bundle(
        out_dir=out,
        ca_cert=p[CA_CERT],
        ca_key=p[CA_KEY],
        tls_cert=p[TLS_CERT],
        tls_key=p[TLS_KEY],
        ca_bundle=ca_bundle_b64(ca_pem),
        serial=cert.serial_number,
        not_valid_before=cert.not_valid_before_utc,
        not_valid_after=cert.not_valid_after_utc,
    )


def load_ca(out_dir: os.PathLike | str):
    """Return ``(ca_key, ca_cert, ca_pem)`` from ``out_dir`` or raise CAError."""
    out = Path(out_dir)
    ca_cert_path, ca_key_path = out / CA_CERT, out / CA_KEY
    try:
        ca_pem = ca_cert_path.read_bytes()
    except OSError as e:
        raise CAError(f"cannot read CA certificate {ca_cert_path}: {e.strerror}") from None
    try:
        key_pem = ca_key_path.read_bytes()
    except OSError as e:
        raise CAError(
            f"cannot read CA key {ca_key_path}: {e.strerror} (renewal needs the CA key)"
        ) from None
    try:
        ca_cert = x509.load_pem_x509_certificate(ca_pem)
    except ValueError as e:
        raise CAError(f"{ca_cert_path} is not a PEM certificate: {e}") from None
    try:
        ca_key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise CAError(f"{ca_key_path} is not an unencrypted PEM private key: {e}") from None
    if ca_key.public_key() != ca_cert.public_key():
        raise CAError(f"{ca_key_path} is not the key of {ca_cert_path}")
    try:
        bc = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound as e:
        raise CAError(f"{ca_cert_path} is not a usable CA certificate: {e}") from None
    if not bc.ca:
        raise CAError(f"{ca_cert_path} is not a CA certificate (CA:false)")
    return ca_key, ca_cert, ca_pem


def renew_serving_cert(
    out_dir: os.PathLike | str,
    dns_names: Iterable[str] | None,
    ip_addresses: Iterable[object] | None = None,
    days: int = DEFAULT_DAYS,
    *,
    key_type: str | None = None,
) -> Bundle:
    """Issue a new serving cert + key from the CA in ``out_dir``.

    ``ca.crt`` and ``ca.key`` are read and left untouched (the caBundle does
    not change); ``tls.key`` then ``tls.crt`` are atomically replaced.
    ``key_type`` defaults to the CA's key type.
    """
    dns, ips = _validate_sans(dns_names, ip_addresses)
    days = _validate_days(days)
    out = Path(out_dir)
    ca_key, ca_cert, ca_pem = load_ca(out)
    if key_type is None:
        key_type = "rsa" if isinstance(ca_key, rsa.RSAPrivateKey) else "ec"
    key, cert = make_serving_cert(ca_key, ca_cert, dns, ips, days, key_type)
    paths = _paths(out)
    _write(paths[TLS_KEY], _key_pem(key), 0o600)
    _write(paths[TLS_CERT], _cert_pem(cert), 0o644)
    return _bundle(out, ca_pem, cert)
