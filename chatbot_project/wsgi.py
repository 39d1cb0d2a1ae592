import os

from chatbot_project.checks import configuration_errors_raise
from core.tracing import traced_wsgi, tracing_requested, tracing_start
from core.wsgi_handler import wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_project.settings")

django_application = wsgi_application()  # the settings read, `.env` with them
# Here, in each gunicorn worker after it forked (the app is not preloaded), so the exporter's thread is the worker's.
if tracing_requested():
    tracing_start()
application = traced_wsgi(django_application)
configuration_errors_raise()  # a server that starts without gunicorn.conf.py or manage.py refuses a bad deploy too
