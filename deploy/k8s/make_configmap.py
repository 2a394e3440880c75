"""Regenerate deploy/k8s/configmap.yaml from config/gateway.yaml (run from the repository root):

    python deploy/k8s/make_configmap.py

tests/deploy/test_files.py fails when the two disagree on models, tiers or routing.
"""

import re
from pathlib import Path

src = Path("config/gateway.yaml").read_text()
body = src[src.index("server:") :]


def sub(old, new):
    global body
    assert old in body, old
    body = body.replace(old, new)


sub(
    """server:
  host: 127.0.0.1
  port: 8080
  workers: 1
""",
    """server:
  host: 0.0.0.0
  port: 8080                        # = containerPort in deployment.yaml and the Dockerfile's EXPOSE
  workers: 2                        # deployment.yaml passes --workers 2 as well
""",
)
sub(
    """  metrics_port: 0                   # 0 = none
""",
    """  metrics_port: 9464                # = the metrics containerPort; NetworkPolicy: monitoring only
""",
)
sub(
    """redis:
  url: ""                           # empty: the embedded store (see embedded_dir)
  cluster: false                    # true: url names one node of a Redis Cluster
""",
    """redis:
  url: ""                           # set from the Secret (REDIS_URL); all replicas share one Redis
  cluster: false                    # true: url names one node of a Redis Cluster
""",
)
body = re.sub(r"simulator:\n(?:  .*\n)+\n", "", body)
sub(
    """  teams_file: config/teams.yaml     # teams and keys loaded at start ("" = none)""",
    """  teams_file: ""                    # teams and keys live in the shared Redis (admin API / CLI)""",
)
assert "simulator:" not in body
indented = "".join(
    ("    " + line if line.strip() else "\n") for line in body.splitlines(keepends=True)
)
out = (
    """# The gateway's configuration, mounted at /etc/o1-gateway/gateway.yaml (O1GW_CONFIG in
# deployment.yaml). A production copy of config/gateway.yaml: listens on all interfaces, no
# simulator settings, teams kept in the shared Redis rather than a teams file. Secrets
# (OPENAI_API_KEY, GATEWAY_ADMIN_KEY, REDIS_URL) come from the Secret as environment variables;
# any key can also be overridden with O1GW__SECTION__KEY in deployment.yaml.
apiVersion: v1
kind: ConfigMap
metadata:
  name: o1-gateway-config
  labels:
    app.kubernetes.io/name: o1-gateway
    app.kubernetes.io/component: gateway
data:
  gateway.yaml: |
"""
    + indented
)
Path("deploy/k8s/configmap.yaml").write_text(out)
