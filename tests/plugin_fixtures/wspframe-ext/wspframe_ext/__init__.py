"""wspframe test fixture: an out-of-tree layer and base provider."""
