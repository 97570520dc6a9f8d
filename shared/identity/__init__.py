"""The identity core: accounts and per-department roles, staff passwords + TOTP, students' e-mail
links, server-side sessions, API tokens and the OpenID Connect relying party. No Flask here; the
apps wire it up through `shared.identity.wiring.build_identity` (see README.md)."""
