"""IDEFICS model construction: configs (9B, 80B, tiny), backbone loading, freezing, parameter groups."""
