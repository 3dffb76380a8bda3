"""The connector's core: everything the three functions do, with clients passed in."""
