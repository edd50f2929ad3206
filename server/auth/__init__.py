"""Who is calling: passwords, TOTP, sessions, CSRF, roles, service tokens, OIDC."""
