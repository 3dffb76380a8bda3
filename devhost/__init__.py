"""The local host: runs the app's own registered functions against Azurite and the simulators,
with the Functions host's semantics. Development, demo and tests only; never deployed."""
