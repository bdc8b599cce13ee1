"""The one exception type the archiver raises for problems with its inputs."""


class ArchiverError(Exception):
    """An input or output problem; the message is one line naming what is wrong and where."""
