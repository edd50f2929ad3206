"""Management reports: DNFB aging and coder productivity, as JSON, pages with charts, CSV."""
