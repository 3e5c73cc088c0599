"""The Recommender API: gRPC transport apart from the task logic (`vitrine.serving`).

`servicer` (the gRPC methods, errors to status codes in one place, metrics), `server` (the server
factory: servicer, health, reflection), `requests` (wire requests -> validated domain queries),
`wire` (lenient decoding: undecodable bytes are INVALID_ARGUMENT), `security` (TLS, mTLS, bearer
tokens, for servers and clients) and `client` (the typed Python client). Nothing in `vitrine.serving`
imports gRPC or the generated messages.
"""
