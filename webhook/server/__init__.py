"""The admission webhook server: flask app (``app``), AdmissionReview v1 (``review``),
Prometheus metrics (``metrics``), JSON logs (``logs``), gunicorn runner (``gunicorn``)
and the ``serve`` command (``cli``)."""
