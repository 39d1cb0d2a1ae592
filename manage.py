#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_project.settings")
    from django.core.management import execute_from_command_line

    from core.startup import failures_as_messages

    # A bad setting, or a Redis that is down or misnamed, ends a command with one message, not a traceback.
    with failures_as_messages():
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
