"""Names the controller's parts must agree on without importing each other.

`CONTROLLER_CN`: the common name of every controller replica's certificate. The PKI issues
it (controller/pki/certs.py) and the gRPC server's identity check recognises a replica by it
(controller/grpcserver/identity.py), which knows no other part of the controller.
"""

from __future__ import annotations

CONTROLLER_CN = "vigil-controller"
