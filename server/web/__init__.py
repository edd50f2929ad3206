"""Templates, htmx helpers, security headers and page glue."""
