import os

from django.core.wsgi import get_wsgi_application

from chatbot_project.checks import configuration_errors_raise

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_project.settings")

application = get_wsgi_application()
configuration_errors_raise()  # a server that starts without gunicorn.conf.py or manage.py refuses a bad deploy too
