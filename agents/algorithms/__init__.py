"""Learning algorithms, one per file; registered in the `arena.agents` entry-point group."""
