"""HTTP simulators of the two outside services, TeleMessage and Microsoft Graph.

They are product code: the local demo and the tests reach them over loopback HTTP exactly as
the connector reaches the real services, so they must keep those services' rules and limits.
"""
