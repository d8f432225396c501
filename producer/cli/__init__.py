"""The `farpool` command line: its commands, their shared options, and what `farpool cluster` prints."""

from producer.cli.commands import main

__all__ = ["main"]
