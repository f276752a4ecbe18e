"""A local Xero: identity (OAuth 2.0 + PKCE, connections) and the Accounting API, on one port."""
