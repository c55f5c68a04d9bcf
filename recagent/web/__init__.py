"""`recagent serve`: the HTTP API, its server-sent events and the static chat page, over
`recagent.app` and `ChatSession`."""
