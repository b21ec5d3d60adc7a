"""The differential tier: the engine's verdicts against the real kube-scheduler (see README.md)."""
