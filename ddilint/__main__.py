from ddilint.cli import entry

entry()
