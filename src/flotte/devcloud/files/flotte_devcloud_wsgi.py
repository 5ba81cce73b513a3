"""WSGI entry point for devcloud's OpenStack APIs, installed into the devcloud venv.

gunicorn loads ``flotte_devcloud_wsgi:application``; the environment variable
``FLOTTE_DEVCLOUD_SERVICE`` names the API. oslo.config parses ``sys.argv`` when an
API initialises, and gunicorn's own command line is not something it understands,
so ``sys.argv`` is reset before the service's module is imported.
"""

import importlib
import os
import sys

MODULES = {
    "keystone": "keystone.wsgi.api",
    "glance": "glance.wsgi.api",
    "placement": "placement.wsgi.api",
    "nova": "nova.wsgi.osapi_compute",
    "neutron": "neutron.wsgi.api",
}

sys.argv = sys.argv[:1]
application = importlib.import_module(MODULES[os.environ["FLOTTE_DEVCLOUD_SERVICE"]]).application
