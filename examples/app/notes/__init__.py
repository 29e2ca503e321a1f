"""A small app built on datalayer: notes that belong to datalayer's users."""
