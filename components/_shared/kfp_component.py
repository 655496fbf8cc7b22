"""What every edgeopt KFP component shares: the container image, tied to the package version so a component
definition and the code it runs cannot drift apart."""

import os

from edgeopt.components import __version__

# `docker build -t edgeopt:VERSION .` (see README); set EDGEOPT_KFP_IMAGE to the pushed name, e.g.
# registry.example.com/ml/edgeopt:0.1.0, before compiling for a cluster.
IMAGE = os.environ.get("EDGEOPT_KFP_IMAGE", f"edgeopt:{__version__}")
