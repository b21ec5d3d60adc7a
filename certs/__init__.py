"""TLS certificate tooling for the capacity webhook.

* :mod:`certs.authority` - a small private CA and the serving certificate
  (``ca.crt``, ``ca.key``, ``tls.crt``, ``tls.key``) plus the caBundle value.
* :mod:`certs.reloader` - a server ``SSLContext`` that follows certificate
  rotation on disk, with a gunicorn ``ssl_context`` hook.
* :mod:`certs.cli` - the ``capacity-webhook certs`` click command
  (imported separately so that the library does not need click).
"""

from .authority import (
    Bundle,
    BundleExistsError,
    CAError,
    CertError,
    InvalidCertInputError,
    renew_serving_cert,
    write_bundle,
)
from .reloader import ReloadingTLSContext, gunicorn_ssl_context, ssl_context_hook

__all__ = [
    "Bundle",
    "BundleExistsError",
    "CAError",
    "CertError",
    "InvalidCertInputError",
    "ReloadingTLSContext",
    "gunicorn_ssl_context",
    "renew_serving_cert",
    "ssl_context_hook",
    "write_bundle",
]
