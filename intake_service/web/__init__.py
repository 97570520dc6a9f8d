"""HTTP adapters of the intake service: the JSON API and the server-rendered pages."""
