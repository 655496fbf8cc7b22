"""What every edgeopt KFP component shares: the container image, tied to the package version so a component
definition and the code it runs cannot drift apart."""

import os

from edgeopt.components import __version__

IMAGE_ENV = "EDGEOPT_KFP_IMAGE"
VERSIONED_IMAGE = f"edgeopt:{__version__}"


def default_image() -> str:
    """EDGEOPT_KFP_IMAGE, else edgeopt:VERSION (`docker build -t edgeopt:VERSION .`, see README). A compile for a
    cluster names the pushed image instead: `edgeopt pipeline compile --image REGISTRY/edgeopt:VERSION`."""
    return os.environ.get(IMAGE_ENV) or VERSIONED_IMAGE


# The image the component definitions carry; `pipeline compile --image` replaces it on every task.
IMAGE = default_image()
