"""Built-in methods, registered through the ``mlbench.methods`` entry-point group."""
