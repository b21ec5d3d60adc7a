"""certs.authority + certs.cli: real keys, real certificates, real TLS on loopback."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.authority import (
    CLOCK_SKEW,
    BundleExistsError,
    CAError,
    CertError,
    InvalidCertInputError,
    renew_serving_cert,
    write_bundle,
)
from certs.cli import certs_command
from tests.tls_server import TLSServer, client_context, presented_serial

REPO = Path(__file__).resolve().parents[1]
SVC = "capacity-webhook.kube-system.svc"
ALL_FILES = ("ca.crt", "ca.key", "tls.crt", "tls.key")


def load_cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def snapshot(d: Path) -> dict[str, bytes]:
    return {n: (d / n).read_bytes() for n in ALL_FILES}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    b = write_bundle(
        out, [SVC, f"{SVC}.cluster.local", "localhost"], ["127.0.0.1", "::1"], days=30
    )
    return b


# --------------------------------------------------------------------------
# contents of the generated files


def test_files_parse_and_modes(bundle):
    ca = load_cert(bundle.ca_cert)
    tls = load_cert(bundle.tls_cert)
    from cryptography.hazmat.primitives import serialization

    ca_key = serialization.load_pem_private_key(bundle.ca_key.read_bytes(), None)
    key = serialization.load_pem_private_key(bundle.tls_key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert key.public_key() == tls.public_key()
    assert ca_key.public_key() == ca.public_key()
    for p in (bundle.tls_key, bundle.ca_key):
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert tls.serial_number == bundle.serial
    # no temp files left behind by the atomic writes
    assert sorted(os.listdir(bundle.out_dir)) == sorted(ALL_FILES)


def test_ca_bundle_is_base64_of_ca_pem(bundle):
    assert base64.b64decode(bundle.ca_bundle, validate=True) == bundle.ca_cert.read_bytes()


def test_ca_extensions(bundle):
    ca = load_cert(bundle.ca_cert)
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is True
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
    ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ca.subject == ca.issuer
    # the CA outlives the serving certificate
    assert ca.not_valid_after_utc > load_cert(bundle.tls_cert).not_valid_after_utc


def test_serving_cert_extensions(bundle):
    tls = load_cert(bundle.tls_cert)
    ca = load_cert(bundle.ca_cert)
    san = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [SVC, f"{SVC}.cluster.local", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert tls.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == SVC
    assert tls.issuer == ca.subject
    eku = tls.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    ku = tls.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    bc = tls.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ski = tls.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(tls.public_key())
    aki = tls.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest


def test_validity_is_exactly_days(bundle):
    tls = load_cert(bundle.tls_cert)
    assert tls.not_valid_after_utc - tls.not_valid_before_utc == dt.timedelta(days=30)
    now = dt.datetime.now(dt.timezone.utc)
    # backdated by CLOCK_SKEW for API servers with a slow clock, never in the future
    assert now - CLOCK_SKEW - dt.timedelta(seconds=60) <= tls.not_valid_before_utc <= now
    assert bundle.not_valid_after == tls.not_valid_after_utc


def test_default_days_is_365(tmp_path):
    b = write_bundle(tmp_path, ["a.example"], [])
    tls = load_cert(b.tls_cert)
    assert tls.not_valid_after_utc - tls.not_valid_before_utc == dt.timedelta(days=365)


def test_serving_cert_verifies_against_ca(bundle, tmp_path):
    tls = load_cert(bundle.tls_cert)
    tls.verify_directly_issued_by(load_cert(bundle.ca_cert))
    other = write_bundle(tmp_path, ["x.example"], [])
    with pytest.raises((ValueError, InvalidSignature)):
        tls.verify_directly_issued_by(load_cert(other.ca_cert))


def test_ip_only_and_rsa(tmp_path):
    b = write_bundle(tmp_path, [], ["10.0.0.7"], days=2, key_type="rsa")
    tls = load_cert(b.tls_cert)
    assert isinstance(tls.public_key(), rsa.RSAPublicKey)
    assert tls.public_key().key_size == 2048
    assert tls.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "10.0.0.7"
    san = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == []
    tls.verify_directly_issued_by(load_cert(b.ca_cert))
    assert tls.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


# --------------------------------------------------------------------------
# a real TLS handshake on loopback


@pytest.fixture
def tls_server(bundle):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(bundle.tls_cert, bundle.tls_key)
    with TLSServer(ctx) as srv:
        yield srv


def test_tls_handshake_with_dns_san_passes(bundle, tls_server):
    ctx = client_context(bundle.ca_cert)
    assert presented_serial(tls_server.port, ctx, SVC) == bundle.serial
    assert presented_serial(tls_server.port, ctx, "localhost") == bundle.serial
    # IP SAN: Python checks the address against the IP SANs
    assert presented_serial(tls_server.port, ctx, "127.0.0.1") == bundle.serial


def test_tls_handshake_fails_for_name_not_in_sans(bundle, tls_server):
    with pytest.raises(ssl.SSLCertVerificationError, match="[Hh]ostname mismatch"):
        presented_serial(tls_server.port, client_context(bundle.ca_cert), "evil.kube-system.svc")


def test_tls_handshake_fails_against_other_ca(bundle, tls_server, tmp_path):
    other = write_bundle(tmp_path, [SVC], [])
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        presented_serial(tls_server.port, client_context(other.ca_cert), SVC)


# --------------------------------------------------------------------------
# overwrite protection, renewal


def test_no_overwrite_without_force(tmp_path):
    write_bundle(tmp_path, ["a.example"], [])
    before = snapshot(tmp_path)
    with pytest.raises(BundleExistsError) as ei:
        write_bundle(tmp_path, ["b.example"], [])
    assert str(tmp_path / "ca.crt") in str(ei.value)
    assert "force" in str(ei.value)
    assert isinstance(ei.value, FileExistsError)
    assert snapshot(tmp_path) == before


def test_refuses_if_any_single_file_exists(tmp_path):
    (tmp_path / "tls.key").write_bytes(b"precious")
    with pytest.raises(BundleExistsError, match=r"tls\.key"):
        write_bundle(tmp_path, ["a.example"], [])
    assert sorted(os.listdir(tmp_path)) == ["tls.key"]
    assert (tmp_path / "tls.key").read_bytes() == b"precious"


def test_force_overwrites(tmp_path):
    write_bundle(tmp_path, ["a.example"], [])
    before = snapshot(tmp_path)
    b = write_bundle(tmp_path, ["b.example"], [], force=True)
    after = snapshot(tmp_path)
    assert all(before[n] != after[n] for n in ALL_FILES)
    assert load_cert(b.tls_cert).subject.rfc4514_string() == "CN=b.example"
    assert stat.S_IMODE(os.stat(b.tls_key).st_mode) == 0o600


def test_renew_keeps_ca_and_issues_new_serving_cert(tmp_path):
    first = write_bundle(tmp_path, ["a.example"], ["127.0.0.1"], days=10)
    before = snapshot(tmp_path)
    second = renew_serving_cert(tmp_path, ["a.example", "b.example"], ["127.0.0.1"], days=5)
    after = snapshot(tmp_path)
    assert after["ca.crt"] == before["ca.crt"] and after["ca.key"] == before["ca.key"]
    assert after["tls.crt"] != before["tls.crt"] and after["tls.key"] != before["tls.key"]
    assert second.serial != first.serial
    assert second.ca_bundle == first.ca_bundle
    tls = load_cert(second.tls_cert)
    tls.verify_directly_issued_by(load_cert(second.ca_cert))
    assert tls.not_valid_after_utc - tls.not_valid_before_utc == dt.timedelta(days=5)
    assert stat.S_IMODE(os.stat(second.tls_key).st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == sorted(ALL_FILES)


def test_renew_without_ca_key_fails_clearly(tmp_path):
    write_bundle(tmp_path, ["a.example"], [])
    (tmp_path / "ca.key").unlink()
    with pytest.raises(CAError, match=r"ca\.key.*renewal needs the CA key"):
        renew_serving_cert(tmp_path, ["a.example"], [])


def test_renew_beyond_ca_lifetime_fails(tmp_path):
    write_bundle(tmp_path, ["a.example"], [], days=10, ca_days=10)
    with pytest.raises(CAError, match="CA expires"):
        renew_serving_cert(tmp_path, ["a.example"], [], days=11)


# --------------------------------------------------------------------------
# input validation


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dns_names=[], ip_addresses=[]), "at least one DNS name or IP"),
        (dict(dns_names=None, ip_addresses=None), "at least one DNS name or IP"),
        (dict(dns_names=["a.example"], ip_addresses=["300.1.1.1"]), "invalid IP address '300.1.1.1'"),
        (dict(dns_names=[], ip_addresses=["10.0.0.0/8"]), "invalid IP address '10.0.0.0/8'"),
        (dict(dns_names=["bad_name.example"]), "invalid DNS name 'bad_name.example'"),
        (dict(dns_names=["-a.example"]), "invalid DNS name"),
        (dict(dns_names=["a..example"]), "invalid DNS name"),
        (dict(dns_names=[""]), "empty DNS name"),
        (dict(dns_names=["10.1.2.3"]), "it is an IP address"),
        (dict(dns_names=["bücher.example"]), "punycode"),
        (dict(dns_names=["a.example"], days=0), "days must be at least 1"),
        (dict(dns_names=["a.example"], days=-5), "days must be at least 1"),
        (dict(dns_names=["a.example"], days=1.5), "days must be an integer"),
        (dict(dns_names=["a.example"], key_type="dsa"), "key_type must be one of"),
    ],
)
def test_bad_input(tmp_path, kwargs, match):
    out = tmp_path / "out"
    with pytest.raises(InvalidCertInputError, match=match):
        write_bundle(out, **kwargs)
    assert not out.exists()  # validated before anything is written


def test_errors_share_a_base_class():
    assert issubclass(BundleExistsError, CertError)
    assert issubclass(InvalidCertInputError, ValueError)


def test_out_dir_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(CertError, match="not a directory"):
        write_bundle(f, ["a.example"], [])


# --------------------------------------------------------------------------
# CLI


def test_cli_clirunner(tmp_path):
    out = tmp_path / "tls"
    res = CliRunner().invoke(
        certs_command,
        ["--out", str(out), "--dns", SVC, "--dns", "localhost", "--ip", "127.0.0.1", "--days", "7"],
    )
    assert res.exit_code == 0, res.output
    last = res.stdout.strip().splitlines()[-1]
    assert base64.b64decode(last, validate=True) == (out / "ca.crt").read_bytes()
    for name in ALL_FILES:
        assert str(out / name) in res.stdout
    assert stat.S_IMODE(os.stat(out / "tls.key").st_mode) == 0o600
    tls = load_cert(out / "tls.crt")
    assert tls.not_valid_after_utc - tls.not_valid_before_utc == dt.timedelta(days=7)

    # second run without --force: one-line error, exit 2, files untouched
    before = snapshot(out)
    res = CliRunner().invoke(certs_command, ["--out", str(out), "--dns", SVC])
    assert res.exit_code == 2
    assert res.stdout == ""
    assert res.stderr.strip().count("\n") == 0
    assert "refusing to overwrite" in res.stderr and "--force" in res.stderr
    assert snapshot(out) == before

    res = CliRunner().invoke(certs_command, ["--out", str(out), "--dns", SVC, "--force"])
    assert res.exit_code == 0, res.output
    assert snapshot(out)["ca.crt"] != before["ca.crt"]


@pytest.mark.parametrize(
    "args, match",
    [
        ([], "Missing option '--out'"),
        (["--dns", "a"], "Missing option '--out'"),
        (["--out", "{out}"], "at least one --dns NAME or --ip IP"),
        (["--out", "{out}", "--ip", "1.2.3"], "invalid IP address '1.2.3'"),
        (["--out", "{out}", "--dns", "a_b"], "invalid DNS name 'a_b'"),
        (["--out", "{out}", "--dns", "a", "--days", "0"], "days must be at least 1"),
        (["--out", "{out}", "--dns", "a", "--days", "x"], "not a valid integer"),
    ],
)
def test_cli_errors_are_one_line_exit_2(tmp_path, args, match):
    out = tmp_path / "o"
    res = CliRunner().invoke(certs_command, [a.format(out=out) for a in args])
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("Error: ") and "\n" not in err, err
    assert match in err
    assert "Traceback" not in res.output
    assert not out.exists()


def _run_cli(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-c", "from certs.cli import certs_command; certs_command()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_cli_subprocess(tmp_path):
    out = tmp_path / "sub"
    p = _run_cli("--out", str(out), "--dns", SVC, "--ip", "127.0.0.1")
    assert p.returncode == 0, p.stderr
    last = p.stdout.splitlines()[-1]  # what `| tail -1` gives
    assert base64.b64decode(last, validate=True) == (out / "ca.crt").read_bytes()
    assert stat.S_IMODE(os.stat(out / "tls.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out / "ca.key").st_mode) == 0o600
    load_cert(out / "tls.crt").verify_directly_issued_by(load_cert(out / "ca.crt"))

    p = _run_cli("--out", str(out), "--dns", SVC)
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr.strip().startswith("Error: refusing to overwrite existing files")
    assert "Traceback" not in p.stderr and p.stderr.strip().count("\n") == 0

    p = _run_cli("--out", str(out), "--ip", "not-an-ip")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip() == (
        "Error: invalid IP address 'not-an-ip': expected an IPv4 or IPv6 address "
        "such as 10.0.0.1 or fd00::1"
    )
