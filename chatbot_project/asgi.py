"""Django's ASGI entry point. Nothing in the project serves it (gunicorn serves chatbot_project.wsgi), and it is not
traced: docs/operations.md, Traces."""

import os

from django.core.asgi import get_asgi_application

from chatbot_project.checks import configuration_errors_raise

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_project.settings")

application = get_asgi_application()
configuration_errors_raise()  # a server that starts without gunicorn.conf.py or manage.py refuses a bad deploy too
