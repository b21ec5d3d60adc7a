"""``python -m webhook.server --cluster snapshot.json --tls-cert-file ... --tls-private-key-file ...``"""

from .cli import serve_command

if __name__ == "__main__":
    serve_command(prog_name="capacity-webhook serve")
