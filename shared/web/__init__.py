"""Flask glue shared by both apps: who is calling, the access rule of every endpoint, sign-in
pages, security headers and rate limits. The one part of `shared` that may import Flask; the
identity core it drives (`shared.identity`) stays Flask-free."""
