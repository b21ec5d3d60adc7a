"""Suite-wide guards: the tests reach nothing but loopback.

boto3's default credential chain ends at the EC2 instance metadata service (a link-local
address). Live-mode servers started by the tests look up AWS figures in the background, and
no test may send a packet off this machine, so the metadata lookup is switched off for this
process and every process it starts. Tests that exercise AWS calls use moto.
"""

import os

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
