"""Built-in rules, one module each, registered through the ddilint.rules entry-point group."""
