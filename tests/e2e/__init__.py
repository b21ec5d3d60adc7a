"""End-to-end tier: real kube-apiserver + etcd + kubectl + helm (see controlplane.py)."""
