"""The turn layer's tests run with no task and no file descriptor outliving a test."""

from tests.hygiene import _no_fd_leak, _no_task_leak  # noqa: F401
