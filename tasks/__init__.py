"""Built-in datasets and task variants, registered through the ``mlbench.tasks`` entry-point group."""
